/** `sshPrivateKey`, `sshTimeoutSeconds`, `sshAttempts`: how the program logs in to every host. */
import type { Problems } from "./problems";
import { Sensitive } from "./sensitive";
import { wholeNumber } from "./read";

export interface SshSettings {
  /** Seconds per TCP connect attempt (the provider's perDialTimeout). */
  timeoutSeconds: number;
  /** Connection attempts before a host counts as unreachable (the provider's dialErrorLimit). */
  attempts: number;
}

/**
 * The deploy key. Absent (undefined) only in a preview run without it: a preview runs no command on
 * a host, so a pull-request preview needs no key; `pulumi up` always requires it.
 */
export function parseSshPrivateKey(
  problems: Problems,
  text: string | undefined,
  preview = false,
): Sensitive | undefined {
  if ((text === undefined || text.trim() === "") && preview) {
    problems.warn(
      "sshPrivateKey",
      "is not set: previewing without it (a preview connects to no host); `pulumi up` requires it.",
    );
    return undefined;
  }
  if (text === undefined || text.trim() === "") {
    problems.add(
      "sshPrivateKey",
      "is missing",
      "`pulumi config set --secret sshPrivateKey < ~/.ssh/pms_deploy_ed25519`",
    );
  } else if (!/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text)) {
    problems.add(
      "sshPrivateKey",
      "is not a PEM/OpenSSH private key",
      "set the private key file's full contents: `pulumi config set --secret sshPrivateKey < KEYFILE`",
    );
  }
  return new Sensitive(text ?? "");
}

export function parseSshSettings(problems: Problems, timeout: unknown, attempts: unknown): SshSettings {
  return {
    timeoutSeconds: wholeNumber(problems, "sshTimeoutSeconds", timeout, {
      min: 1,
      max: 300,
      default: 10,
      unit: "the seconds per SSH connection attempt",
    }),
    attempts: wholeNumber(problems, "sshAttempts", attempts, {
      min: 1,
      max: 20,
      default: 3,
      unit: "the SSH connection attempts before giving up",
    }),
  };
}
