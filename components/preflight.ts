/**
 * Reachability checks `pulumi up` makes before it registers any resource, for the faults the
 * command provider cannot bound or explain itself (measured with the real CLI, see
 * test/host/faults.test.ts):
 *
 * - A host that accepts the TCP connection but never sends its SSH banner (an overloaded sshd at
 *   MaxStartups, a half-dead VM, something else on the port). pulumi-command's `perDialTimeout`
 *   bounds only the TCP connect and the SSH handshake has no deadline, so the rollout, and with it
 *   `pulumi up`, would wait forever; `customTimeouts` cannot interrupt it.
 * - The SSH agent, the program's only way to log in (components/config/ssh.ts): `SSH_AUTH_SOCK`
 *   unset (the provider would offer no key and every host would fail after the secret was
 *   stored), pointing at no agent (a stale shell, an agent that died: the provider fails with a
 *   bare `dial unix ...` error), or at an agent that holds no key.
 *
 * Each costs one local connection: no login, nothing written. A preview skips them: it connects to
 * no host (pull-request previews run where the hosts are not reachable and hold no key).
 */
import * as net from "node:net";
import * as pulumi from "@pulumi/pulumi";
import type { HostSpec } from "./config";
import { AGENT_FIX } from "./config/ssh";

/** How long one agent-socket connect may take. */
const AGENT_TIMEOUT_MS = 2000;

export interface PreflightSettings {
  hosts: readonly HostSpec[];
  /** The dial limits of the config: the banner must arrive within timeoutSeconds × attempts. */
  ssh: { timeoutSeconds: number; attempts: number };
}

/** A failed check: the CLI prints the message alone (a RunError has no stack trace). */
export class PreflightError extends pulumi.RunError {
  constructor(readonly problems: readonly string[]) {
    super(
      `${problems.length} host${problems.length === 1 ? "" : "s"} cannot be rolled out; nothing was changed:\n` +
        problems.map((p) => `  - ${p}`).join("\n"),
    );
    this.name = "PreflightError";
  }
}

/**
 * Resolves to a description of the fault when `host:port` accepts a TCP connection and then sends
 * no line starting `SSH-` within `timeoutMs` (silent, closed, or not SSH). Resolves to undefined
 * when the banner arrives, and also when the TCP connect itself fails or does not complete: the
 * provider bounds that with perDialTimeout × dialErrorLimit and reports it per host, so an
 * unreachable host still fails only its own rollout and later ones (the engine's behaviour).
 */
export function probeSshBanner(address: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let received = "";
    let settled = false;
    const socket = net.connect({ host: address, port });
    const finish = (problem: string | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(problem);
    };
    const timer = setTimeout(() => {
      finish(
        socket.readyState !== "open"
          ? undefined
          : received === ""
            ? `accepted the TCP connection but sent no SSH banner within ${timeoutMs / 1000}s`
            : `accepted the TCP connection but sent no SSH banner line within ${timeoutMs / 1000}s`,
      );
    }, timeoutMs);
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      received += chunk;
      // RFC 4253 4.2: the server may send other lines before its identification string.
      const lines = received.split("\n");
      for (const line of lines.slice(0, -1)) {
        if (line.startsWith("SSH-")) return finish(undefined);
      }
      if (received.length > 8192) finish("answered, but not with an SSH banner");
    });
    let connected = false;
    socket.on("connect", () => (connected = true));
    socket.on("error", () => {
      // Refused or unreachable before the connect: the provider's own bounded dial reports it.
      if (!connected) finish(undefined);
    });
    socket.on("close", () => finish(connected ? "closed the connection before sending an SSH banner" : undefined));
  });
}

/** SSH agent protocol (draft-miller-ssh-agent): list the identities the agent holds. */
const SSH_AGENTC_REQUEST_IDENTITIES = 11;
const SSH_AGENT_IDENTITIES_ANSWER = 12;

/**
 * Asks the agent on the unix socket `path` for its identities, as the provider does before it
 * offers them. Resolves to undefined when it answers with at least one key; otherwise to what is
 * wrong (no socket, refused, no answer, not an agent, no key).
 */
export function probeAgentSocket(path: string, timeoutMs: number = AGENT_TIMEOUT_MS): Promise<string | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    let received = Buffer.alloc(0);
    const socket = net.connect({ path });
    const finish = (problem: string | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(problem);
    };
    const timer = setTimeout(() => finish(`no answer within ${timeoutMs / 1000}s`), timeoutMs);
    socket.on("connect", () => {
      // uint32 length 1, then the message type.
      socket.write(Buffer.from([0, 0, 0, 1, SSH_AGENTC_REQUEST_IDENTITIES]));
    });
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 9) return;
      const type = received[4];
      if (type !== SSH_AGENT_IDENTITIES_ANSWER) {
        finish(`answered, but not as an SSH agent listing its keys (message type ${type})`);
      } else {
        finish(received.readUInt32BE(5) === 0 ? "the agent holds no key" : undefined);
      }
    });
    socket.on("error", (err: NodeJS.ErrnoException) =>
      finish(err.code === "ENOENT" ? "no such socket" : `connection failed: ${err.code ?? err.message}`),
    );
    socket.on("close", () => finish("closed the connection without listing its keys"));
  });
}

/**
 * Every problem with the hosts and the agent, checked in parallel. `agentSocket` is the
 * environment's SSH_AUTH_SOCK (the provider inherits the same variable and logs in with it only).
 */
export async function preflightProblems(
  settings: PreflightSettings,
  agentSocket: string | undefined,
): Promise<string[]> {
  const bannerMs = settings.ssh.timeoutSeconds * settings.ssh.attempts * 1000;
  const checks: Promise<string | undefined>[] = settings.hosts.map(async (h, i) => {
    const problem = await probeSshBanner(h.address, h.port, bannerMs);
    return problem === undefined
      ? undefined
      : `hosts[${i}] (${h.name}, ${h.address}:${h.port}): ${problem}. The command provider would wait for ` +
          `its SSH handshake without a limit. Fix: check sshd on the host (\`systemctl status ssh\`, ` +
          `MaxStartups in sshd_config) and that ${h.address}:${h.port} is its sshd, or raise ` +
          `sshTimeoutSeconds/sshAttempts for a slow link`;
  });
  if (agentSocket === undefined || agentSocket === "") {
    checks.push(
      Promise.resolve(
        "SSH_AUTH_SOCK is not set: the program logs in to the hosts only through an SSH agent. " + `Fix: ${AGENT_FIX}`,
      ),
    );
  } else {
    checks.push(
      probeAgentSocket(agentSocket).then((problem) =>
        problem === undefined
          ? undefined
          : `SSH_AUTH_SOCK=${agentSocket}: ${problem}; the command provider logs in to every host through ` +
            `this agent only. Fix: ${problem === "the agent holds no key" ? "`ssh-add` the deploy key to it" : "point SSH_AUTH_SOCK at a running agent holding the deploy key"}, or ${AGENT_FIX}`,
      ),
    );
  }
  return (await Promise.all(checks)).filter((p): p is string => p !== undefined);
}

/** Throws PreflightError listing every problem; does nothing in a preview. */
export async function preflight(settings: PreflightSettings): Promise<void> {
  if (pulumi.runtime.isDryRun()) return;
  const problems = await preflightProblems(settings, process.env.SSH_AUTH_SOCK);
  if (problems.length > 0) throw new PreflightError(problems);
}
