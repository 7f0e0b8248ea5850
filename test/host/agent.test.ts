/**
 * The deploy key never reaches the state (issue 19): the program logs in through an SSH agent
 * only, as the deploy job does (ssh-agent + ssh-add from the environment secret, SSH_AUTH_SOCK
 * inherited by the command provider). Through the real CLI on a real host, as the `deploy` user
 * with the runbook's sudoers line:
 * - after `pulumi up` the exported state, secrets decrypted, holds no private key material;
 * - another agent on another socket path, holding the same key, changes nothing (the path is not
 *   in the state, so it cannot re-run a rollout);
 * - without an agent, `pulumi up` stops before any resource, naming SSH_AUTH_SOCK and the fix;
 * - migration: a state written by the old program (the key in each rollout's connection) loses the
 *   key on the next `up`, and the host is not touched (the rollout finds its env in place).
 *
 *   node --import tsx --test test/host/agent.test.ts     (root, Linux)
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { hostSuite } from "./suite";
import { assertOk, changesOf, commandSteps, PulumiStack, SshAgent } from "./pulumi-cli";
import { ENV_FILE, envDiff, fleetConfig, hostFile, servicesState, unavailable } from "./scenario";
import { bootFleet, hostTestsUnavailableReason, TestFleet, TestHost, verboseLog } from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;

/** The signature Pulumi puts on secret values in a checkpoint. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/**
 * `connection` with `privateKey` added, as the old program stored it: the provider marks the whole
 * connection secret, so it may be one secret envelope (JSON in `plaintext`) or a plain object.
 */
function withPrivateKey(connection: unknown, privateKey: string): unknown {
  const c = connection as Record<string, unknown>;
  if (c[SECRET_SIG] !== undefined && typeof c.plaintext === "string") {
    const inner = JSON.parse(c.plaintext) as Record<string, unknown>;
    return { ...c, plaintext: JSON.stringify({ ...inner, privateKey }) };
  }
  return {
    ...c,
    privateKey: { [SECRET_SIG]: "1b47061264138c4ac30d75fd1eb44270", plaintext: JSON.stringify(privateKey) },
  };
}

/** The connection fields a rollout may have: where and how to dial, never a credential. */
const CONNECTION_FIELDS = ["dialErrorLimit", "host", "hostKey", "perDialTimeout", "port", "user"];

describe("deploy key through an SSH agent only, real pulumi", { skip }, () => {
  let fleet: TestFleet;
  let host: TestHost;
  let stack: PulumiStack;
  let config: Record<string, unknown>;
  let scratch: string;

  /** `pulumi stack export --show-secrets` as text: every secret of the state in clear. */
  const exportedState = async (): Promise<string> => {
    const r = await stack.run(["stack", "export", "--show-secrets"], { revealsSecrets: true });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };

  /** What of the deploy key (or any private key) the exported state holds; none is the only good answer. */
  const keyMaterial = (state: string): string[] => {
    const found: string[] = [];
    if (/PRIVATE KEY/.test(state)) found.push("a PEM/OpenSSH private key header");
    // Also inside a secret envelope, whose plaintext is JSON in a string (quotes escaped).
    if (/\\?"(privateKey|privateKeyPassword|password)\\?"/.test(state)) found.push("a credential field");
    const body = fleet.privateKey
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.length >= 20 && !l.startsWith("-----"));
    for (const line of body) if (state.includes(line)) found.push(`a line of the deploy key (${line.slice(0, 6)}...)`);
    return found;
  };

  before(async () => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), "pms-agent-"));
    fleet = await bootFleet(["solo"], log, { httpHost: "public" });
    host = fleet.hosts[0];
    stack = await PulumiStack.create({ stack: "dev", log });
    // As the shipped stack files log in: `deploy` through the runbook's sudoers line, not root.
    config = fleetConfig(fleet, [host], { user: "deploy" });
  });
  after(async () => {
    await stack?.dispose();
    await fleet?.teardown();
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  it("after a real `pulumi up` the exported state (secrets shown) holds no private key material, and no rollout connection a credential", async () => {
    await stack.setConfig(config);
    const r = await stack.up();
    assertOk(r);
    assert.deepEqual(commandSteps(r), ["create solo-rollout"]);
    assert.deepEqual(envDiff((await hostFile(fleet, host, ENV_FILE)).content, stack.sentEnvFile(host.name)), []);
    const state = await exportedState();
    assert.deepEqual(keyMaterial(state), [], "the state holds the deploy key");
    const rollouts = stack.state.filter((s) => s.type === "command:remote:Command");
    assert.equal(rollouts.length, 1);
    for (const res of rollouts) {
      for (const side of [res.inputs, res.outputs]) {
        assert.deepEqual(Object.keys(side.connection as object).sort(), CONNECTION_FIELDS, res.urn);
      }
      assert.equal((res.inputs.connection as { user: string }).user, "deploy");
    }
    // The checks above can fail: the same scan finds the key in a text that holds it.
    assert.ok(keyMaterial(`{"privateKey":${JSON.stringify(fleet.privateKey)}}`).length >= 2);
    assert.deepEqual(stack.leaks(), []);
  });

  it("another agent on another socket path, holding the same key, touches nothing (the path is not in the state)", async () => {
    const other = await SshAgent.start(path.join(scratch, "second-agent"), log);
    try {
      await other.add(fleet.privateKey);
      assert.notEqual(other.socket, stack.agentSocket);
      const before = await servicesState(fleet, host);
      stack.extraEnv = { SSH_AUTH_SOCK: other.socket };
      const r = await stack.up();
      assertOk(r);
      assert.deepEqual(commandSteps(r), [], "no rollout ran again");
      assert.deepEqual(Object.keys(changesOf(r)), ["same"]);
      assert.deepEqual(await servicesState(fleet, host), before, "no service restarted");
      const state = await exportedState();
      for (const sock of [other.socket, stack.agentSocket ?? "no agent"]) assert.ok(!state.includes(sock), sock);
      assert.deepEqual(keyMaterial(state), []);
    } finally {
      stack.extraEnv = {};
      await other.stop();
    }
  });

  it("without an agent, `pulumi up` with a rotation pending stops before any resource, naming SSH_AUTH_SOCK and the fix", async () => {
    await stack.setConfig({ ...config, rotate: { SECRET_KEY: "2026-12-05" } });
    const versionBefore = stack.resource("store-version")?.outputs.versionId;
    assert.ok(versionBefore, "a stored version to compare with");
    const envBefore = (await hostFile(fleet, host, ENV_FILE)).content;
    stack.extraEnv = { SSH_AUTH_SOCK: "" };
    try {
      const r = await stack.up();
      assert.notEqual(r.code, 0);
      assert.match(
        r.output,
        /SSH_AUTH_SOCK is not set: the program logs in to the hosts only through an SSH agent\. Fix: use an SSH agent: `eval "\$\(ssh-agent -s\)" && ssh-add /,
      );
      assert.deepEqual(commandSteps(r), []);
      assert.equal(stack.resource("store-version")?.outputs.versionId, versionBefore, "no new secret version");
      assert.equal((await hostFile(fleet, host, ENV_FILE)).content, envBefore);
    } finally {
      stack.extraEnv = {};
    }
    // With the agent back the rotation goes through, and the state still holds no key.
    const r = await stack.up();
    assertOk(r);
    assert.deepEqual(keyMaterial(await exportedState()), []);
    assert.deepEqual(stack.leaks(), []);
  });

  it("migration: a state holding the old connection.privateKey loses it on the next `up`, and the host is not touched", async () => {
    // The state as the old program left it: the same rollout, its connection with the deploy key.
    const doc = JSON.parse(await exportedState()) as {
      deployment: {
        resources: Array<{ type: string; inputs?: Record<string, unknown>; outputs?: Record<string, unknown> }>;
      };
    };
    const rollout = doc.deployment.resources.find((r) => r.type === "command:remote:Command");
    assert.ok(rollout?.inputs && rollout.outputs);
    rollout.inputs.connection = withPrivateKey(rollout.inputs.connection, fleet.privateKey);
    rollout.outputs.connection = withPrivateKey(rollout.outputs.connection, fleet.privateKey);
    const file = path.join(scratch, "old-state.json");
    fs.writeFileSync(file, JSON.stringify(doc), { mode: 0o600 });
    const imported = await stack.run(["stack", "import", "--file", file]);
    fs.rmSync(file);
    assert.equal(imported.code, 0, imported.output);
    assert.ok(keyMaterial(await exportedState()).length > 0, "the imported state holds the key, as an old one does");

    const before = await servicesState(fleet, host);
    const envBefore = (await hostFile(fleet, host, ENV_FILE)).content;
    const r = await stack.up();
    assertOk(r);
    assert.deepEqual(commandSteps(r), ["update solo-rollout"], "the rollout's connection changed: it runs once");
    assert.match(r.output, /nothing to do/, "the rollout found its env already in place");
    assert.deepEqual(await servicesState(fleet, host), before, "no service restarted");
    assert.equal((await hostFile(fleet, host, ENV_FILE)).content, envBefore);
    assert.deepEqual(keyMaterial(await exportedState()), [], "the key left the state");
    // And the run after it touches nothing.
    const again = await stack.up();
    assertOk(again);
    assert.deepEqual(commandSteps(again), []);
  });
});
