// The checks `pulumi up` makes before any resource (components/preflight.ts), against real
// listeners on 127.0.0.1 and a real unix socket: a silent sshd, a real banner, a closed port,
// a non-SSH answer, a dead agent socket, and real ssh-agents (empty, then holding a key).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { PreflightError, preflightProblems, probeAgentSocket, probeSshBanner } from "../components/preflight";

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];
after(() => {
  for (const s of sockets) s.destroy();
  for (const s of servers) s.close();
});

/** A TCP server on 127.0.0.1 that does `onConnection` with each client; resolves to its port. */
async function listen(onConnection: (sock: net.Socket) => void): Promise<number> {
  const server = net.createServer((sock) => {
    sockets.push(sock);
    onConnection(sock);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as net.AddressInfo).port;
}

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

const host = (name: string, port: number) => ({ name, address: "127.0.0.1", port, user: "root" });

describe("SSH banner probe", () => {
  it("passes a server that sends its banner, also after other lines (RFC 4253 4.2)", async () => {
    const port = await listen((s) => s.write("hello from a banner-happy sshd\r\nSSH-2.0-OpenSSH_10.0\r\n"));
    assert.equal(await probeSshBanner("127.0.0.1", port, 2000), undefined);
  });

  it("names a host that accepts TCP and then says nothing, within the given time", async () => {
    const port = await listen(() => undefined);
    const started = Date.now();
    const problem = await probeSshBanner("127.0.0.1", port, 500);
    assert.match(problem ?? "", /accepted the TCP connection but sent no SSH banner within 0.5s/);
    assert.ok(Date.now() - started < 3000, "bounded by the timeout");
  });

  it("names a server that answers something that is not SSH, or hangs up before a banner", async () => {
    const http = await listen((s) => s.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
    assert.match(
      (await probeSshBanner("127.0.0.1", http, 2000)) ?? "",
      /closed the connection before sending an SSH banner/,
    );
  });

  it("leaves a refused connection to the provider's own bounded dial (no preflight problem)", async () => {
    assert.equal(await probeSshBanner("127.0.0.1", await closedPort(), 2000), undefined);
  });
});

/** A unix-socket server at `sock` doing `onConnection` with each client. */
async function listenUnix(sock: string, onConnection: (s: net.Socket) => void): Promise<void> {
  const server = net.createServer((s) => {
    sockets.push(s);
    onConnection(s);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(sock, resolve));
}

/** A real `ssh-agent -D` on `sock`, ended by its PID when the test ends. */
async function realAgent(t: { after: (fn: () => void) => void }, sock: string): Promise<void> {
  const agent = spawn("ssh-agent", ["-D", "-a", sock], { stdio: "ignore" });
  t.after(() => agent.kill("SIGTERM"));
  for (let i = 0; i < 100 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(fs.existsSync(sock), "ssh-agent made its socket");
}

const hasOpenSsh = spawnSync("ssh-agent", ["-h"]).error === undefined;

describe("SSH_AUTH_SOCK probe (the agent is the only login)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pms-preflight-"));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("passes a real ssh-agent only once it holds a key", { skip: !hasOpenSsh && "no ssh-agent" }, async (t) => {
    const sock = path.join(dir, "agent.sock");
    await realAgent(t, sock);
    assert.equal(await probeAgentSocket(sock), "the agent holds no key");
    const key = path.join(dir, "id_ed25519");
    assert.equal(spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]).status, 0);
    const add = spawnSync("ssh-add", [key], { env: { ...process.env, SSH_AUTH_SOCK: sock }, encoding: "utf8" });
    assert.equal(add.status, 0, add.stderr);
    assert.equal(await probeAgentSocket(sock), undefined);
  });

  it("names a socket that answers but is no agent, or hangs up", async () => {
    const http = path.join(dir, "http.sock");
    await listenUnix(http, (s) => s.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
    assert.match((await probeAgentSocket(http)) ?? "", /not as an SSH agent/);
    const hangup = path.join(dir, "hangup.sock");
    await listenUnix(hangup, (s) => s.end());
    assert.equal(await probeAgentSocket(hangup), "closed the connection without listing its keys");
    const silent = path.join(dir, "silent.sock");
    await listenUnix(silent, () => undefined);
    assert.equal(await probeAgentSocket(silent, 300), "no answer within 0.3s");
  });

  it("names a missing socket and a socket nobody accepts on", async () => {
    assert.equal(await probeAgentSocket(path.join(dir, "missing.sock")), "no such socket");
    const stale = path.join(dir, "stale.sock");
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(stale, resolve));
    // Closing a unix server unlinks its path on Node; recreate the node as a plain file, as a
    // crashed agent leaves a path behind that no process listens on.
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.writeFileSync(stale, "");
    assert.match((await probeAgentSocket(stale)) ?? "", /connection failed: ECONNREFUSED/);
  });
});

describe("preflightProblems", () => {
  it("lists every stalled host and a dead agent at once, each with its key and fix", async () => {
    const good = await listen((s) => s.write("SSH-2.0-OpenSSH_10.0\r\n"));
    const silent = await listen(() => undefined);
    const problems = await preflightProblems(
      {
        hosts: [host("web1", good), host("web2", silent), host("web3", await closedPort())],
        ssh: { timeoutSeconds: 1, attempts: 1 },
      },
      path.join(os.tmpdir(), "pms-preflight-no-such-agent.sock"),
    );
    assert.equal(problems.length, 2, problems.join("\n"));
    assert.match(
      problems[0],
      /^hosts\[1\] \(web2, 127\.0\.0\.1:\d+\): accepted the TCP connection but sent no SSH banner.*Fix: /,
    );
    assert.match(
      problems[1],
      /^SSH_AUTH_SOCK=\S+: no such socket; .*logs in to every host through this agent only\. Fix: point SSH_AUTH_SOCK at a running agent holding the deploy key, or use an SSH agent: /,
    );
    const err = new PreflightError(problems);
    assert.match(err.message, /^2 hosts cannot be rolled out; nothing was changed:\n {2}- hosts\[1\]/);
  });

  it("refuses an `up` without SSH_AUTH_SOCK: no key would be offered to any host", async () => {
    const good = await listen((s) => s.write("SSH-2.0-OpenSSH_10.0\r\n"));
    for (const unset of [undefined, ""]) {
      const problems = await preflightProblems(
        { hosts: [host("web1", good)], ssh: { timeoutSeconds: 1, attempts: 1 } },
        unset,
      );
      assert.equal(problems.length, 1, problems.join("\n"));
      assert.match(
        problems[0],
        /^SSH_AUTH_SOCK is not set: the program logs in to the hosts only through an SSH agent\. Fix: use an SSH agent: `eval "\$\(ssh-agent -s\)" && ssh-add /,
      );
    }
  });

  it("has nothing to say when every host answers SSH and the agent holds a key", async () => {
    const good = await listen((s) => s.write("SSH-2.0-OpenSSH_10.0\r\n"));
    const sock = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pms-preflight-")), "fake-agent.sock");
    // SSH2_AGENT_IDENTITIES_ANSWER (12) with one identity; the probe reads only the count.
    await listenUnix(sock, (s) => s.once("data", () => s.write(Buffer.from([0, 0, 0, 9, 12, 0, 0, 0, 1, 0, 0, 0, 0]))));
    assert.deepEqual(
      await preflightProblems({ hosts: [host("web1", good)], ssh: { timeoutSeconds: 1, attempts: 1 } }, sock),
      [],
    );
  });
});
