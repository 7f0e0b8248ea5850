/**
 * What a user sees from the real `pulumi` CLI before any host is touched: config errors on the
 * shipped Pulumi.dev.yaml (placeholders, a leftover sshPrivateKey in plain text or as a secret,
 * a plaintext supplied secret) as the CLI prints them, and the policy pack run by the CLI
 * (`--policy-pack policy`) blocking an up. No test host is needed (nothing
 * connects anywhere: hosts point at a loopback port nothing listens on).
 *
 *   node --import tsx --test test/host/cli.test.ts
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { hostSuite } from "./suite";
import { commandSteps, PulumiStack, REPO } from "./pulumi-cli";
import { unavailable } from "./scenario";
import { hostTestsUnavailableReason, verboseLog } from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;

/** A fresh ed25519 key pair: [private key (OpenSSH PEM), public key line]. */
function keyPair(dir: string, name: string): [string, string] {
  const file = path.join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", file]);
  return [fs.readFileSync(file, "utf8"), fs.readFileSync(`${file}.pub`, "utf8").split(" ").slice(0, 2).join(" ")];
}

describe("the CLI's own config validation, on the shipped Pulumi.dev.yaml", { skip }, () => {
  let stack: PulumiStack;
  let keys: string;
  let privateKey: string;

  before(async () => {
    keys = fs.mkdtempSync(path.join(os.tmpdir(), "pms-cli-keys-"));
    [privateKey] = keyPair(keys, "deploy");
    stack = await PulumiStack.create({ stack: "dev", log });
    stack.writeStackFile(fs.readFileSync(path.join(REPO, "Pulumi.dev.yaml"), "utf8"));
    stack.noteSecret(privateKey);
  });
  after(async () => {
    await stack?.dispose();
    if (keys) fs.rmSync(keys, { recursive: true, force: true });
  });

  it("on the shipped file `pulumi up` stops before any resource, listing every problem with its fix; no SSH key is asked for (the CLI's own check does not pre-empt them)", async () => {
    const r = await stack.up();
    assert.notEqual(r.code, 0);
    // Pulumi.yaml declares no type/secret/required keys, so the CLI's first-finding-only check
    // ("Stack 'dev' is missing configuration value ...") never fires.
    assert.doesNotMatch(r.output, /validating stack config/);
    assert.match(r.output, /Stack "dev" has \d+ configuration problems?; nothing was changed:/);
    assert.match(r.output, /- pms-secrets:hosts\[0\]\.address: .*Fix: /);
    assert.match(r.output, /- pms-secrets:secrets\.DB_PASSWORD: is missing.*Fix: /);
    // The key is no config: the program logs in through an SSH agent.
    assert.doesNotMatch(r.output, /pms-secrets:sshPrivateKey/);
    assert.deepEqual(commandSteps(r), [], "no rollout ran");
    log(r.output);
  });

  it("a leftover sshPrivateKey in plain text is refused before any resource with the SSH agent migration, and the key is not printed", async () => {
    const set = await stack.run(["config", "set", "--plaintext", "sshPrivateKey"], { stdin: privateKey });
    assert.equal(set.code, 0, set.output);
    assert.match(stack.stackFile(), /BEGIN OPENSSH PRIVATE KEY/, "the mistake really is in the stack file");
    const r = await stack.preview();
    assert.notEqual(r.code, 0);
    assert.match(
      r.output,
      /- pms-secrets:sshPrivateKey: is no longer read: .*Fix: `pulumi config rm sshPrivateKey`, then use an SSH agent: /,
    );
    assert.deepEqual(stack.leaks(), []);
  });

  it("a leftover sshPrivateKey set as a secret is refused the same way, with the other problems, each with its fix, and no stack trace", async () => {
    const set = await stack.run(["config", "set", "--secret", "sshPrivateKey"], { stdin: privateKey });
    assert.equal(set.code, 0, set.output);
    assert.doesNotMatch(stack.stackFile(), /BEGIN OPENSSH PRIVATE KEY/);
    const r = await stack.preview();
    assert.notEqual(r.code, 0);
    assert.match(r.output, /Stack "dev" has \d+ configuration problems?; nothing was changed:/);
    assert.match(r.output, /- pms-secrets:secrets\.DB_PASSWORD: .*Fix: /);
    assert.match(r.output, /- pms-secrets:hosts\[0\]\.address: .*Fix: /);
    assert.match(r.output, /- pms-secrets:sshPrivateKey: is no longer read: .*then rotate the deploy key/);
    assert.doesNotMatch(r.output, /at .*\.ts:\d+:\d+/, "a config error is not a stack trace");
    assert.deepEqual(commandSteps(r), []);
    assert.deepEqual(stack.leaks(), []);
    log(r.output);
    // The migration's first step, as the message says: the key problem is gone.
    const rm = await stack.run(["config", "rm", "sshPrivateKey"]);
    assert.equal(rm.code, 0, rm.output);
    const again = await stack.preview();
    assert.doesNotMatch(again.output, /pms-secrets:sshPrivateKey/);
    assert.match(again.output, /- pms-secrets:secrets\.DB_PASSWORD: .*Fix: /);
  });

  it("a supplied secret pasted in plaintext is refused by the program (the CLI cannot see it inside a map)", async () => {
    const set = await stack.run(["config", "set", "--plaintext", "--path", "secrets.DB_PASSWORD"], {
      stdin: "plaintext-db-password-4711",
    });
    assert.equal(set.code, 0, set.output);
    stack.noteSecret("plaintext-db-password-4711");
    const r = await stack.preview();
    assert.notEqual(r.code, 0);
    assert.match(r.output, /pms-secrets:secrets[.:]? .*plain ?text.*Fix: .*--secret/i);
    assert.deepEqual(stack.leaks(), []);
  });
});

describe("the policy pack, run by the CLI", { skip }, () => {
  let stack: PulumiStack;
  let keys: string;
  let config: Record<string, unknown>;

  before(async () => {
    keys = fs.mkdtempSync(path.join(os.tmpdir(), "pms-cli-keys-"));
    const [privateKey] = keyPair(keys, "deploy");
    const [, hostKey] = keyPair(keys, "host");
    stack = await PulumiStack.create({ stack: "prod", log });
    // A valid prod config except for what only the policy pack demands: a customer-managed KMS key.
    config = {
      hosts: [{ name: "web1", address: "127.0.0.1", port: 1, user: "deploy", hostKey }],
      sshPrivateKey: privateKey,
      app: { dir: "/srv/pms-backend", healthUrl: "http://127.0.0.1:8000/health/" },
      env: {
        DEBUG: "False",
        ALLOWED_HOSTS: "api.pms.example.com",
        DB_NAME: "poultry_db",
        DB_USER: "pms",
        DB_HOST: "127.0.0.1",
        DB_PORT: "5432",
      },
      secrets: { DB_PASSWORD: "policy-test-db-password" },
      rotation: new Date().toISOString().slice(0, 10),
      sshTimeoutSeconds: 2,
      sshAttempts: 1,
    };
    await stack.setConfig(config);
  });
  after(async () => {
    await stack?.dispose();
    if (keys) fs.rmSync(keys, { recursive: true, force: true });
  });

  it("a mandatory violation (prod without a customer-managed KMS key) blocks `pulumi up` before anything is created", async () => {
    const r = await stack.up([
      "--policy-pack",
      path.join(REPO, "policy"),
      "--policy-pack-config",
      path.join(REPO, "policy", "config.json"),
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.output, /secrets-manager-production-kms/);
    assert.match(r.output, /mandatory/);
    assert.deepEqual(
      stack.state.filter((s) => s.type.startsWith("aws:") || s.type.startsWith("command:")),
      [],
      "nothing was created",
    );
    assert.deepEqual(stack.leaks(), []);
    log(r.output);
  });

  it("without the pack the same up goes ahead (stores the secret) and fails only at the unreachable host: the pack is what blocked it", async () => {
    const r = await stack.up();
    assert.notEqual(r.code, 0);
    assert.ok(stack.resource("store-secret", "aws:secretsmanager/secret:Secret"), "the secret was created");
    assert.match(r.output, /web1-rollout[\s\S]*connection refused/);
    assert.deepEqual(stack.leaks(), []);
  });
});
