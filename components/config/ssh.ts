/**
 * `sshTimeoutSeconds`, `sshAttempts`: how the program dials every host; and the retired
 * `sshPrivateKey`.
 *
 * The program logs in through an SSH agent only (SSH_AUTH_SOCK in the environment of `pulumi up`,
 * which the command provider inherits and dials; see components/preflight.ts). The deploy key is
 * never a program input: a `remote.Command` stores its whole `connection` in the state, so a key
 * given to it would sit in every checkpoint, readable by anyone who can decrypt the state (an
 * approved preview included). The agent's socket path is not given to the provider either: a
 * per-run path in `connection` would change every rollout's inputs and re-run it.
 */
import type { Problems } from "./problems";
import { NumberRange, wholeNumber } from "./read";

export interface SshSettings {
  /** Seconds per TCP connect attempt (the provider's perDialTimeout). */
  timeoutSeconds: number;
  /** Connection attempts before a host counts as unreachable (the provider's dialErrorLimit). */
  attempts: number;
}

/** How to give the program the deploy key: the one fix every SSH login message points to. */
export const AGENT_FIX =
  'use an SSH agent: `eval "$(ssh-agent -s)" && ssh-add ~/.ssh/pms_deploy_ed25519` in the shell that runs ' +
  "`pulumi up` (CI: the deploy job loads the key from its environment secret; docs/RUNBOOK.md, Deploy key)";

/**
 * `sshPrivateKey` is refused whenever it is set (to anything, even an empty value): the key would
 * be stored in the state. The message names the migration.
 */
export function refuseSshPrivateKey(problems: Problems, text: string | undefined): void {
  if (text === undefined) return;
  problems.add(
    "sshPrivateKey",
    "is no longer read: a deploy key given to the program is stored in the state of every host's " +
      "rollout (connection.privateKey), where whoever can decrypt the state can read it",
    `\`pulumi config rm sshPrivateKey\`, then ${AGENT_FIX}. The next \`pulumi up\` removes the key ` +
      "from the state; then rotate the deploy key (older checkpoints in the backend's history and " +
      "backups still hold it)",
  );
}

/** `sshTimeoutSeconds` and `sshAttempts` (docs/CONFIG.md quotes them; test/config-doc.test.ts). */
export const SSH_RANGES = {
  sshTimeoutSeconds: { min: 1, max: 300, default: 10, unit: "the seconds per SSH connection attempt" },
  sshAttempts: { min: 1, max: 20, default: 3, unit: "the SSH connection attempts before giving up" },
} as const satisfies Record<string, NumberRange>;

export function parseSshSettings(problems: Problems, timeout: unknown, attempts: unknown): SshSettings {
  return {
    timeoutSeconds: wholeNumber(problems, "sshTimeoutSeconds", timeout, SSH_RANGES.sshTimeoutSeconds),
    attempts: wholeNumber(problems, "sshAttempts", attempts, SSH_RANGES.sshAttempts),
  };
}
