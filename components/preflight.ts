/**
 * Reachability checks `pulumi up` makes before it registers any resource, for the two faults the
 * command provider cannot bound or explain itself (measured with the real CLI, see
 * test/host/faults.test.ts):
 *
 * - A host that accepts the TCP connection but never sends its SSH banner (an overloaded sshd at
 *   MaxStartups, a half-dead VM, something else on the port). pulumi-command's `perDialTimeout`
 *   bounds only the TCP connect and the SSH handshake has no deadline, so the rollout, and with it
 *   `pulumi up`, would wait forever; `customTimeouts` cannot interrupt it.
 * - `SSH_AUTH_SOCK` pointing at no agent (a stale shell, an agent that died): the provider dials it
 *   for every host before trying the deploy key and fails with a bare `dial unix ...` error.
 *
 * Each costs one local connection: no login, nothing written. A preview skips them: it connects to
 * no host (pull-request previews run where the hosts are not reachable).
 */
import * as net from "node:net";
import * as pulumi from "@pulumi/pulumi";
import type { HostSpec } from "./config";

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

/** Resolves to undefined when something accepts a connection on the unix socket `path`. */
export function probeAgentSocket(path: string, timeoutMs: number = AGENT_TIMEOUT_MS): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ path });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(`no answer within ${timeoutMs / 1000}s`);
    }, timeoutMs);
    socket.on("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(undefined);
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code === "ENOENT" ? "no such socket" : `connection failed: ${err.code ?? err.message}`);
    });
  });
}

/**
 * Every problem with the hosts and the agent, checked in parallel. `agentSocket` is the
 * environment's SSH_AUTH_SOCK (the provider reads the same variable).
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
  if (agentSocket !== undefined && agentSocket !== "") {
    checks.push(
      probeAgentSocket(agentSocket).then((problem) =>
        problem === undefined
          ? undefined
          : `SSH_AUTH_SOCK=${agentSocket}: ${problem}; the command provider would try this agent for every ` +
            `host and fail. Fix: \`unset SSH_AUTH_SOCK\` (the deploy key comes from sshPrivateKey) or start ` +
            `the agent it names`,
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
