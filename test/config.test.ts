/** parseStackConfig as a whole: composition, every problem at once, production, plaintext secrets. */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, parseStackConfig } from "../components/config";
import { baseConfig, defined, SENTINEL_DB_PASSWORD, SENTINEL_SSH_KEY } from "./fixtures";
import { runProgram } from "./harness";
import { assertProblem, keysOf, rawConfig as raw, stackProblems as problemsOf } from "./config-check";

test("the base dev and prod configs are valid", () => {
  assert.deepEqual(problemsOf(baseConfig("dev"), "dev"), []);
  assert.deepEqual(problemsOf(baseConfig("prod"), "prod"), []);
});

test("ConfigError is a pulumi.RunError, so the CLI prints the message without a stack trace", () => {
  try {
    parseStackConfig(raw({ ...baseConfig("dev"), hosts: [] }), "dev");
    assert.fail("expected a ConfigError");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.ok(e instanceof pulumi.RunError);
    assert.ok(pulumi.RunError.isInstance(e));
    assert.equal(e.name, "ConfigError");
  }
});

test("every problem of every section is listed in one error, before anything else happens", () => {
  const config = {
    ...baseConfig("prod"),
    hosts: [
      { name: "web1", address: "", port: 99999 },
      { name: "web1", address: "b", hostKey: "garbage" },
    ],
    app: { dir: "relative", services: ["bad name"] },
    env: { DEBUG: "true", ALLOWED_HOSTS: "", "BAD-KEY": "x", REDIS_URL: "redis://:pw-SENTINEL@r:6379" },
    secrets: { DB_PASSWORD: `${SENTINEL_DB_PASSWORD}'` },
    generated: { SECRET_KEY: { length: 10 } },
    recoveryWindowInDays: "3",
    kmsKeyId: "alias/REPLACE-me",
    sshAttempts: "0",
  };
  let error: ConfigError | undefined;
  try {
    parseStackConfig(raw(config), "prod");
  } catch (e) {
    error = e as ConfigError;
  }
  assert.ok(error instanceof ConfigError);
  assert.deepEqual(keysOf(error.problems).sort(), [
    "app.dir",
    "app.services[0]",
    "env.ALLOWED_HOSTS",
    "env.BAD-KEY",
    "env.DB_HOST",
    "env.DB_NAME",
    "env.DB_PORT",
    "env.DB_USER",
    "env.DEBUG",
    "env.REDIS_URL",
    "generated.SECRET_KEY.length",
    "hosts[0].address",
    "hosts[0].hostKey",
    "hosts[0].port",
    "hosts[1].hostKey",
    "hosts[1].name",
    "kmsKeyId",
    "recoveryWindowInDays",
    "secrets.DB_PASSWORD",
    "sshAttempts",
  ]);
  assert.match(error.message, /^Stack "prod" has 20 configuration problems; nothing was changed:/);
  assert.ok(!error.message.includes(SENTINEL_DB_PASSWORD), "a secret value leaked into the error");
  assert.ok(!error.message.includes("pw-SENTINEL"), "a credential from env leaked into the error");
});

test("a bad config fails the program before any resource is registered", async () => {
  await assert.rejects(
    runProgram({ stack: "prod", config: defined({ ...baseConfig("prod"), hosts: [] }) }),
    (e: unknown) => e instanceof ConfigError && /pms-secrets:hosts: no hosts/.test(e.message),
  );
});

test("secret keys stored in plaintext in the stack file are refused, with set-again-and-rotate fixes", () => {
  assert.throws(
    () => parseStackConfig(raw(baseConfig("dev")), "dev", new Set()),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.problems.length === 1 &&
      /^pms-secrets:secrets: is stored in plaintext.*--secret --path 'secrets.DB_PASSWORD'` \(it prompts\), then rotate/.test(
        e.problems[0],
      ),
  );
});

test("production rules follow the name (production, prd-eu) or production: true", () => {
  const debugOn = { ...baseConfig("prod"), env: { ...(baseConfig("prod").env as object), DEBUG: "True" } };
  for (const stack of ["prod", "production", "prd-eu"]) {
    assertProblem(problemsOf(debugOn, stack), "env.DEBUG", new RegExp(`is on for production stack "${stack}"`));
  }
  assertProblem(
    problemsOf({ ...debugOn, production: "true" }, "staging"),
    "env.DEBUG",
    /is on for this stack \(production: true\)/,
  );
  assert.deepEqual(problemsOf(debugOn, "staging"), []);
  const unpinned = { ...baseConfig("dev"), production: true, hosts: [{ name: "web1", address: "10.0.0.5" }] };
  assertProblem(problemsOf(unpinned, "dev"), "hosts[0].hostKey", /this stack \(production: true\) requires/);
  assertProblem(problemsOf({ ...baseConfig("dev"), production: "maybe" }, "dev"), "production", /not true or false/);
});

test("defaults: 30-day window and pinned keys on production, 7 days elsewhere", () => {
  const dev = parseStackConfig(raw(baseConfig("dev")), "dev").settings;
  const prod = parseStackConfig(raw(baseConfig("prod")), "prod").settings;
  assert.equal(dev.recoveryWindowInDays, 7);
  assert.equal(prod.recoveryWindowInDays, 30);
  assert.equal(dev.secretName, "pms-backend/dev");
  assert.equal(prod.app.healthHost, "api.pms.internal");
  assertProblem(
    problemsOf({ ...baseConfig("dev"), requireHostKeys: "true", hosts: [{ name: "web1", address: "a" }] }, "dev"),
    "hosts[0].hostKey",
    /requireHostKeys/,
  );
});

test("unknown keys are refused, naming the known ones", () => {
  assertProblem(
    problemsOf({ ...baseConfig("dev"), hostz: [] }, "dev"),
    "hostz",
    /not a setting of this program.*use one of: production, hosts, app, /,
  );
});

test("Sensitive values never print", async () => {
  const parsed = parseStackConfig(raw(baseConfig("dev")), "dev");
  const { inspect } = await import("node:util");
  for (const s of [
    String(parsed.suppliedSecrets.DB_PASSWORD),
    JSON.stringify(parsed),
    inspect(parsed, { depth: 10 }),
  ]) {
    assert.ok(!s.includes(SENTINEL_DB_PASSWORD), "Sensitive leaked through string conversion");
  }
  assert.equal(parsed.suppliedSecrets.DB_PASSWORD.reveal(), SENTINEL_DB_PASSWORD);
});

test("sshPrivateKey is refused in any form (secret, plaintext, empty), naming the key and the SSH agent fix", () => {
  for (const [value, secretKeys] of [
    [SENTINEL_SSH_KEY, ["pms-secrets:secrets", "pms-secrets:sshPrivateKey"]],
    [SENTINEL_SSH_KEY, ["pms-secrets:secrets"]],
    ["", ["pms-secrets:secrets"]],
  ] as const) {
    assert.throws(
      () => parseStackConfig(raw({ ...baseConfig("dev"), sshPrivateKey: value }), "dev", new Set(secretKeys)),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.problems.length === 1 &&
        /^pms-secrets:sshPrivateKey: is no longer read: a deploy key given to the program is stored in the state .*Fix: `pulumi config rm sshPrivateKey`, then use an SSH agent: `eval "\$\(ssh-agent -s\)" && ssh-add .*then rotate the deploy key/.test(
          e.problems[0],
        ) &&
        !e.message.includes(SENTINEL_SSH_KEY.split("\n")[1]),
    );
  }
  // Without it the same config is fine: no SSH credential is config.
  assert.doesNotThrow(() => parseStackConfig(raw(baseConfig("dev")), "dev", new Set(["pms-secrets:secrets"])));
});
