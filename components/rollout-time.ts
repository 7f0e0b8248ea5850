/**
 * How long one host's rollout can take at worst, from the stack config, and the check that it fits
 * the rollout command's resource timeout (`customTimeouts` in host-rollout.ts).
 *
 * Every wait of the host agent (agent/pms_agent, budget.py) is bounded, and systemd enforces
 * the worker's two budgets: past the forward budget (`RuntimeMaxSec=`) the worker is stopped and
 * rolls back, within the rollback budget (`TimeoutStopSec=`, then SIGKILL). The agent computes the
 * same sums from its arguments (budget.forward, budget.rollback, budget.worst_case);
 * test/rollout-time.test.ts keeps the two equal. A config whose worst case does not fit would let
 * the engine give up on a host that is still rolling out, or rolling back: refused before any
 * resource, naming the keys that make it long.
 */
import type { AppSpec } from "./config/app";
import type { Problems } from "./config/problems";

/** The rollout command's create/update timeout. */
export const ROLLOUT_TIMEOUT_SECONDS = 30 * 60;
export const ROLLOUT_TIMEOUT = `${ROLLOUT_TIMEOUT_SECONDS / 60}m`;

/** The agent's bounds, in seconds (its constants of the same names, agent/pms_agent/constants.py). */
export const HOST_BOUNDS = {
  LOCK_TIMEOUT: 120,
  CHECK_TIMEOUT: 180,
  RESTART_TIMEOUT: 90,
  SYSTEMCTL_TIMEOUT: 15,
  HTTP_TIMEOUT: 5,
  HANDOFF_TIMEOUT: 30,
  EXEC_TIMEOUT: 10,
  DB_BUDGET: 190,
  DB_RESTORE_BUDGET: 120,
  RELAY_MARGIN: 60,
} as const;

export interface RolloutTimeInput {
  app: Pick<
    AppSpec,
    "services" | "healthUrls" | "checkCommand" | "stableSeconds" | "healthTimeoutSeconds" | "loginProbe"
  >;
  /** generated.DB_PASSWORD: the rollout changes the password in PostgreSQL (--rotate-db-password). */
  rotateDbPassword: boolean;
  ssh: { timeoutSeconds: number; attempts: number };
}

export interface RolloutTime {
  /** The worker's forward budget (RuntimeMaxSec=). */
  forward: number;
  /** The worker's rollback budget (TimeoutStopSec=). */
  rollback: number;
  /** The whole run on the host: start, hand-off, both budgets, the relay's margin. */
  host: number;
  /** host + the SSH connection attempts (sshTimeoutSeconds × sshAttempts). */
  total: number;
}

export function rolloutWorstCase(input: RolloutTimeInput): RolloutTime {
  const b = HOST_BOUNDS;
  const { app } = input;
  const s = app.services.length;
  const u = app.healthUrls.length;
  const health = u * (app.healthTimeoutSeconds + b.HTTP_TIMEOUT);
  const forward =
    b.LOCK_TIMEOUT +
    8 * b.SYSTEMCTL_TIMEOUT +
    app.stableSeconds +
    s * (b.RESTART_TIMEOUT + 4 * b.SYSTEMCTL_TIMEOUT + b.EXEC_TIMEOUT) +
    health +
    (app.checkCommand ? b.CHECK_TIMEOUT + 30 : 0) +
    (input.rotateDbPassword ? b.DB_BUDGET : 0) +
    (app.loginProbe ? 3 * b.HTTP_TIMEOUT : 0);
  const rollback =
    2 * b.SYSTEMCTL_TIMEOUT +
    health +
    s * (b.RESTART_TIMEOUT + 4 * b.SYSTEMCTL_TIMEOUT + b.EXEC_TIMEOUT + app.stableSeconds) +
    (input.rotateDbPassword ? b.DB_RESTORE_BUDGET : 0);
  const host = b.SYSTEMCTL_TIMEOUT + b.HANDOFF_TIMEOUT + forward + rollback + b.RELAY_MARGIN;
  return { forward, rollback, host, total: host + input.ssh.timeoutSeconds * input.ssh.attempts };
}

/** Refuses a config whose worst case exceeds the resource timeout, naming the keys that make it long. */
export function checkRolloutTime(problems: Problems, input: RolloutTimeInput): void {
  const t = rolloutWorstCase(input);
  if (t.total <= ROLLOUT_TIMEOUT_SECONDS) return;
  const { app } = input;
  const parts = [
    `app.services (${app.services.length})`,
    `app.healthUrls (${app.healthUrls.length})`,
    `app.healthTimeoutSeconds (${app.healthTimeoutSeconds})`,
    `app.stableSeconds (${app.stableSeconds})`,
    `sshTimeoutSeconds × sshAttempts (${input.ssh.timeoutSeconds} × ${input.ssh.attempts})`,
  ];
  if (app.checkCommand) parts.push(`app.checkCommand (${HOST_BOUNDS.CHECK_TIMEOUT + 30} s)`);
  if (input.rotateDbPassword)
    parts.push(`generated.DB_PASSWORD (${HOST_BOUNDS.DB_BUDGET + HOST_BOUNDS.DB_RESTORE_BUDGET} s)`);
  if (app.loginProbe) parts.push(`app.loginProbe (${3 * HOST_BOUNDS.HTTP_TIMEOUT} s)`);
  problems.add(
    "app.healthTimeoutSeconds",
    `with ${parts.join(", ")} one host's rollout can take ${t.total} s at worst (rollout ${t.forward} s + ` +
      `rollback ${t.rollback} s + start, relay and SSH), more than the ${ROLLOUT_TIMEOUT_SECONDS} s the engine ` +
      `waits for it (the engine would give up while the host still rolls out or back)`,
    `lower app.healthTimeoutSeconds or app.stableSeconds, check fewer app.healthUrls, or split app.services ` +
      `over fewer units, until the worst case fits ${ROLLOUT_TIMEOUT_SECONDS} s (docs/RUNBOOK.md "Time bounds")`,
  );
}
