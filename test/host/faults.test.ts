/**
 * Connection faults through the real CLI and the command plugin: pinned host key types
 * (ecdsa works; ssh-rsa cannot, and is refused at config time), a host that accepts TCP and
 * never completes the SSH handshake, and an SSH_AUTH_SOCK that points at a dead agent or at an
 * agent holding no key (the program logs in through the agent only).
 *
 *   node --import tsx --test test/host/faults.test.ts     (root, Linux)
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { hostSuite } from "./suite";
import { CliResult, commandSteps, PulumiStack, SshAgent } from "./pulumi-cli";
import {
  appKeyFingerprint,
  ENV_FILE,
  envDiff,
  fleetConfig,
  hostFile,
  keyFingerprint,
  servicesState,
  unavailable,
} from "./scenario";
import { bootFleet, hostTestsUnavailableReason, TestFleet, TestHost, verboseLog } from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;

/** How long a run against a stalled host may take before the test calls it hung. */
const STALL_BOUND_MS = 4 * 60_000;

describe("connection faults, real pulumi", { skip }, () => {
  let fleet: TestFleet;
  let host: TestHost;
  let stack: PulumiStack;
  let config: Record<string, unknown>;
  let scratch: string;

  const withKey = (hostKey: string, extra: Record<string, unknown> = {}): Record<string, unknown> => {
    const c = fleetConfig(fleet, [host], { overrides: extra });
    (c.hosts as Array<Record<string, unknown>>)[0].hostKey = hostKey;
    return c;
  };
  const upWith = async (c: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<CliResult> => {
    await stack.setConfig(c);
    return stack.up([], opts);
  };

  before(async () => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), "pms-faults-"));
    fleet = await bootFleet(["solo"], log, { httpHost: "public" });
    host = fleet.hosts[0];
    stack = await PulumiStack.create({ stack: "dev", log });
    config = fleetConfig(fleet, [host]);
  });
  after(async () => {
    await stack?.dispose();
    await fleet?.teardown();
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  it("a pinned ecdsa host key works: the first deploy goes through", async () => {
    const ecdsa = (await fleet.exec(host, "cut -d' ' -f1,2 /etc/ssh/ssh_host_ecdsa_key.pub")).stdout.trim();
    assert.match(ecdsa, /^ecdsa-sha2-nistp256 AAAA/);
    const r = await upWith(withKey(ecdsa));
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(
      commandSteps(r).filter((s) => s.startsWith("create")),
      ["create solo-rollout"],
    );
    assert.deepEqual(envDiff((await hostFile(fleet, host, ENV_FILE)).content, stack.sentEnvFile(host.name)), []);
    assert.equal((await appKeyFingerprint(fleet, host)).secret_key, keyFingerprint(stack.generatedValue("SECRET_KEY")));
  });

  it("a pinned ssh-rsa host key is refused at config time with the fix, because the server refuses ssh-rsa signatures", async () => {
    const rsa = (await fleet.exec(host, "cut -d' ' -f1,2 /etc/ssh/ssh_host_rsa_key.pub")).stdout.trim();
    assert.match(rsa, /^ssh-rsa AAAA/);
    // The premise, on this host's OpenSSH: offering only the ssh-rsa (SHA-1) host key algorithm fails.
    const knownHosts = path.join(scratch, "known_hosts_rsa");
    fs.writeFileSync(knownHosts, `[${host.address}]:${host.sshPort} ${rsa}\n`);
    const probe = await new Promise<{ code: number; stderr: string }>((resolve) => {
      const args = [
        "-F", "/dev/null", "-p", String(host.sshPort), "-i", fleet.privateKeyPath,
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "HostKeyAlgorithms=ssh-rsa",
        "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "StrictHostKeyChecking=yes",
        `root@${host.address}`, "true",
      ]; // prettier-ignore
      let stderr = "";
      const child = spawn("ssh", args, { stdio: ["ignore", "ignore", "pipe"] });
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("close", (code) => resolve({ code: code ?? 255, stderr }));
    });
    assert.notEqual(probe.code, 0, "the host accepted an ssh-rsa host key signature");
    assert.match(probe.stderr, /no matching host key type found/);

    const before = await servicesState(fleet, host);
    const r = await upWith(withKey(rsa));
    assert.notEqual(r.code, 0);
    assert.match(r.output, /pms-secrets:hosts\[0\]\.hostKey: is an ssh-rsa key.*Fix: .*ssh-keyscan -t ed25519/);
    assert.deepEqual(commandSteps(r), [], "nothing ran");
    assert.deepEqual(await servicesState(fleet, host), before);
  });

  it("a host that accepts TCP and never completes the SSH handshake: the run ends in bounded time with a message naming the host", async () => {
    const accepted: net.Socket[] = [];
    const stall = net.createServer((sock) => accepted.push(sock)); // accept, say nothing, never close
    await new Promise<void>((res) => stall.listen(0, "127.0.0.1", res));
    const port = (stall.address() as net.AddressInfo).port;
    try {
      const c = fleetConfig(fleet, [host], {
        portOf: () => port,
        overrides: { rotate: { SECRET_KEY: "2026-12-01" }, sshTimeoutSeconds: 3, sshAttempts: 1 },
      });
      const t0 = Date.now();
      const r = await upWith(c, { timeoutMs: STALL_BOUND_MS });
      const took = Date.now() - t0;
      log(`stalled host: exit ${r.code} after ${took} ms:\n${r.output}`);
      assert.ok(accepted.length >= 1, "the provider connected to the stalled port");
      assert.ok(
        !r.timedOut,
        `the run hung: still running after ${STALL_BOUND_MS / 1000}s against a stalled sshd; its output:\n${r.output.slice(-1500)}`,
      );
      assert.notEqual(r.code, 0);
      assert.match(r.output, /solo-rollout/);
      assert.match(r.output, /handshake|timed? ?out|deadline|banner/i);
    } finally {
      for (const s of accepted) s.destroy();
      stall.close();
    }
    // The real config afterwards: the host is reachable again and gets the rotation.
    const back = await upWith({ ...config, rotate: { SECRET_KEY: "2026-12-01" } });
    assert.equal(back.code, 0, back.output);
  });

  const agentFaults = [
    ["missing", "2", /SSH_AUTH_SOCK=\S+agent-missing\.sock: no such socket; /],
    ["refusing", "3", /SSH_AUTH_SOCK=\S+agent-refusing\.sock: connection failed: ECONNREFUSED; /],
    ["empty", "4", /SSH_AUTH_SOCK=\S+: the agent holds no key; .*Fix: `ssh-add` the deploy key to it/],
  ] as const;
  for (const [kind, day, message] of agentFaults) {
    it(`SSH_AUTH_SOCK pointing at ${kind === "empty" ? "an" : "a"} ${kind} agent: the run fails before anything, naming SSH_AUTH_SOCK and the fix`, async () => {
      let sock = path.join(scratch, `agent-${kind}.sock`);
      let emptyAgent: SshAgent | undefined;
      if (kind === "refusing") {
        // A socket file whose agent died: it exists, nothing accepts on it.
        execFileSync("python3", ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", sock]);
        assert.ok(fs.statSync(sock).isSocket());
      } else if (kind === "empty") {
        // A live agent someone forgot to `ssh-add` the key to (ended by its PID below).
        emptyAgent = await SshAgent.start(path.join(scratch, "empty-agent"), log);
        sock = emptyAgent.socket;
      }
      const envBefore = (await hostFile(fleet, host, ENV_FILE)).content;
      const c = { ...config, rotate: { SECRET_KEY: `2026-12-0${day}` } };
      await stack.setConfig(c);
      const versionBefore = stack.resource("store-version")?.outputs.versionId;
      stack.extraEnv = { SSH_AUTH_SOCK: sock };
      try {
        const r = await stack.up();
        log(`SSH_AUTH_SOCK ${kind}: exit ${r.code}\n${r.output}`);
        assert.notEqual(r.code, 0, "the agent is the only way in: the run cannot succeed");
        assert.match(r.output, /cannot be rolled out; nothing was changed:/);
        assert.match(r.output, message, "the failure names the variable and what is wrong with it");
        assert.match(r.output, /use an SSH agent: /);
        assert.deepEqual(commandSteps(r), [], "no rollout ran");
        assert.equal(stack.resource("store-version")?.outputs.versionId, versionBefore, "no new secret version");
        assert.equal((await hostFile(fleet, host, ENV_FILE)).content, envBefore);
      } finally {
        stack.extraEnv = {};
        await emptyAgent?.stop();
      }
      const back = await stack.up();
      assert.equal(back.code, 0, back.output);
    });
  }

  it("a check that prints a line longer than upstream pulumi-command's 64 KiB line limit: the run ends, failing on the check, with the line cut", async () => {
    // Upstream's output relay (bufio.Scanner, 64 KiB tokens) stops reading at such a line and then
    // blocks the SSH session's output copy, so `session.Run` never returns: `pulumi up` would hang
    // for good (customTimeouts cannot interrupt it). The host side cuts every relayed line.
    const c = fleetConfig(fleet, [host], {
      overrides: {
        rotate: { SECRET_KEY: "2026-12-04" },
        app: {
          ...(config.app as object),
          checkCommand: `sh -c 'printf "check: "; head -c 100000 /dev/zero | tr "\\0" x; echo; exit 1'`,
        },
      },
    });
    const deployed = await upWith(config);
    assert.equal(deployed.code, 0, deployed.output);
    const goodEnv = (await hostFile(fleet, host, ENV_FILE)).content;
    const before = await servicesState(fleet, host);
    const started = Date.now();
    const r = await upWith(c, { timeoutMs: STALL_BOUND_MS });
    assert.equal(r.timedOut, false, `the run hung for ${(Date.now() - started) / 1000}s:\n${r.output.slice(-2000)}`);
    assert.notEqual(r.code, 0);
    assert.match(r.output, /FAILED host=solo service=pms-backend check=check-command: the check command exited 1/);
    assert.match(r.output, /check output: check: x{1000,}.*\[cut: \d+ more characters\]/);
    for (const line of r.output.split("\n")) assert.ok(line.length < 65_536, `a ${line.length}-byte line reached the CLI`);
    assert.equal((await hostFile(fleet, host, ENV_FILE)).content, goodEnv, "nothing changed on the host");
    assert.deepEqual(await servicesState(fleet, host), before);
    const back = await upWith(config);
    assert.equal(back.code, 0, back.output);
  });

  it("no recorded CLI output holds a secret", () => {
    assert.deepEqual(stack.leaks(), []);
  });
});
