import * as path from "node:path";
/**
 * Unit tests of the CrossGuard policy pack (policy/). Each policy's validate function is called
 * with the argument objects the policy SDK builds (type, props, urn, name, opts, stackTags,
 * getConfig, notApplicable, ...). One group also goes through the SDK's own analyze RPC handler
 * with a protobuf request, to pin down what the engine really hands a policy: secrets in clear,
 * unknowns behind a throwing proxy.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import * as policySdk from "@pulumi/policy";
import type {
  PolicyResource,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationPolicy,
} from "@pulumi/policy";

import {
  commandTextNoSecretMaterial,
  commandTextNoStackSecret,
  generatedSecretStrength,
  policies,
  remoteCommandHostKeyPinned,
  rotationKeeperAge,
  secretsManagerProductionKms,
} from "../policy/policies";
import { keeperAgeFinding, parseKeeperDate } from "../policy/policies/keeper-age";
import { SAFE_SPECIALS } from "../policy/policies/secret-strength";
import { findSecretMaterial, isHighEntropyToken, parseEnvFile } from "../policy/secret-scan";
import { isProductionUrn, stackOfUrn } from "../policy/stack";
import { readProp, UNKNOWN } from "../policy/props";

// ---------------------------------------------------------------------------------------------
// Argument builders, shaped like @pulumi/policy 1.21 server.js builds them.

/** The engine's "unknown string" sentinel (what an unknown output looks like on the wire). */
const UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

type Proxify = (props: Record<string, unknown>) => Record<string, unknown>;
/** The SDK's own proxy (exported at runtime since 1.21, not in its typings). */
const unknownCheckingProxy = (policySdk as unknown as { unknownCheckingProxy: Proxify }).unknownCheckingProxy;

class NotApplicable extends Error {}

function urnOf(stack: string, type: string, name: string, parentType?: string): string {
  return `urn:pulumi:${stack}::pms-secrets::${parentType ? `${parentType}$` : ""}${type}::${name}`;
}

interface ArgOptions {
  stack?: string;
  config?: Record<string, unknown>;
  parentType?: string;
}

/** Resource options as the engine sends them for a resource declared without any. */
function defaultOptions(): ResourceValidationArgs["opts"] {
  return {
    protect: false,
    ignoreChanges: [],
    aliases: [],
    customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
    additionalSecretOutputs: [],
  };
}

function resourceArgs(
  type: string,
  name: string,
  props: Record<string, unknown>,
  { stack = "prod", config = {}, parentType }: ArgOptions = {},
): ResourceValidationArgs {
  const proxied = unknownCheckingProxy(props);
  return {
    type,
    name,
    urn: urnOf(stack, type, name, parentType),
    props: proxied,
    opts: defaultOptions(),
    stackTags: new Map<string, string>(),
    isType: () => false,
    asType: () => undefined,
    getConfig: <T extends object>() => config as T,
    notApplicable: (reason?: string): never => {
      throw new NotApplicable(reason);
    },
  };
}

type Outcome = { violations: string[]; notApplicable?: string };

async function runResource(policy: ResourceValidationPolicy, args: ResourceValidationArgs): Promise<Outcome> {
  const violations: string[] = [];
  const validations = Array.isArray(policy.validateResource) ? policy.validateResource : [policy.validateResource];
  try {
    for (const validate of validations) await validate?.(args, (message) => violations.push(message));
  } catch (e) {
    if (e instanceof NotApplicable) return { violations, notApplicable: e.message };
    throw e;
  }
  return { violations };
}

function stackResource(type: string, name: string, props: Record<string, unknown>, stack = "prod"): PolicyResource {
  const proxied = unknownCheckingProxy(props);
  return {
    type,
    name,
    urn: urnOf(stack, type, name),
    props: proxied,
    opts: defaultOptions(),
    dependencies: [],
    propertyDependencies: {},
    isType: () => false,
    asType: () => undefined,
  };
}

async function runStack(
  policy: StackValidationPolicy,
  resources: PolicyResource[],
): Promise<Array<{ message: string; urn?: string }>> {
  const violations: Array<{ message: string; urn?: string }> = [];
  await policy.validateStack(
    {
      resources,
      stackTags: new Map(),
      getConfig: <T extends object>() => ({}) as T,
      notApplicable: (reason?: string): never => {
        throw new NotApplicable(reason);
      },
    },
    (message, urn) => violations.push({ message, urn }),
  );
  return violations;
}

// ---------------------------------------------------------------------------------------------
// Fixtures shaped like the program's resources.

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
const SECRET_KEY = "Qx7-vR2.mK9+pL4_zN8~wT3=aB6:cD1?eF5@gH0^jS2!kU7*yV9,nM4xQ8rT1bZ3";
const DB_PASSWORD = "s3cr3t-Db.Passw0rd+Long_Enough~2026abcdXYZ";
const PRIVATE_KEY = [
  "-----BEGIN OPENSSH PRIVATE KEY-----",
  "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
  "QyNTUxOQAAACDjKqp5Fc65tEnRulDqKiy7Gm4B+QvaJFotHYdpfRiiZQAAAJgAAAAAAAAA",
  "-----END OPENSSH PRIVATE KEY-----",
  "",
].join("\n");
const ROLLOUT =
  "sudo -n /bin/bash -c 'set -euo pipefail; install -m 0640 /dev/stdin \"$env_file.new\"' pms-rollout " +
  "--env-file /srv/pms-backend/.env.production --service pms-backend --service celery-pms " +
  "--health-url https://api.example.com/health/";

function rolloutProps(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    connection: {
      host: "203.0.113.10",
      port: 22,
      user: "deploy",
      privateKey: PRIVATE_KEY,
      hostKey: HOST_KEY,
      perDialTimeout: 15,
      dialErrorLimit: 3,
    },
    create: ROLLOUT,
    stdin: `SECRET_KEY='${SECRET_KEY}'\nDB_PASSWORD='${DB_PASSWORD}'\nDEBUG='False'\nDB_NAME='poultry_db'\n`,
    triggers: ["env:0123456789abcdef", "script:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    addPreviousOutputInEnv: false,
    logging: "stdoutAndStderr",
    ...overrides,
  };
}

function isoDaysAgo(days: number): string {
  return new Date(Date.now() - days * 24 * 60 * 60 * 1000).toISOString().slice(0, 10);
}

// ---------------------------------------------------------------------------------------------

describe("stack and production detection", () => {
  it("reads the stack name from a URN, including one with a parent type chain", () => {
    assert.equal(
      stackOfUrn("urn:pulumi:prod::pms-secrets::random:index/randomPassword:RandomPassword::generated-SECRET_KEY"),
      "prod",
    );
    assert.equal(stackOfUrn(urnOf("dev", "command:remote:Command", "web-1-rollout", "pms:secrets:HostRollout")), "dev");
    assert.equal(stackOfUrn("not-a-urn"), undefined);
  });

  it("treats only `prod` as production by default, and follows productionStacks from policy config", () => {
    const prodUrn = urnOf("prod", "x:y:Z", "a");
    const stagingUrn = urnOf("staging", "x:y:Z", "a");
    assert.equal(isProductionUrn(prodUrn, {}), true);
    assert.equal(isProductionUrn(stagingUrn, {}), false);
    assert.equal(isProductionUrn(stagingUrn, { productionStacks: ["prod", "staging"] }), true);
    assert.equal(isProductionUrn(prodUrn, { productionStacks: ["live"] }), false);
    assert.equal(isProductionUrn(prodUrn, { productionStacks: [] }), true, "an empty list falls back to the default");
  });

  it("policy/config.json configures every policy it names with keys the policy declares", async () => {
    const { readFile } = await import("node:fs/promises");
    const config = JSON.parse(await readFile(path.join(__dirname, "..", "policy", "config.json"), "utf8")) as Record<
      string,
      Record<string, unknown>
    >;
    for (const [policyName, values] of Object.entries(config)) {
      const policy = policies.find((p) => p.name === policyName);
      assert.ok(policy, `config.json names unknown policy ${policyName}`);
      for (const key of Object.keys(values)) {
        assert.ok(
          key === "enforcementLevel" || policy.configSchema?.properties[key],
          `${policyName} declares no config key ${key}`,
        );
      }
    }
  });

  it("the pack has unique names, the advisory keeper policy and mandatory others", () => {
    const names = policies.map((p) => p.name);
    assert.equal(new Set(names).size, names.length);
    for (const p of policies) {
      assert.equal(p.enforcementLevel, p.name === "rotation-keeper-age" ? "advisory" : "mandatory", p.name);
    }
  });
});

describe("remote-command-host-key-pinned", () => {
  const type = "command:remote:Command";

  it("passes a production command with a pinned ed25519 host key", async () => {
    const out = await runResource(remoteCommandHostKeyPinned, resourceArgs(type, "web-1-rollout", rolloutProps()));
    assert.deepEqual(out.violations, []);
  });

  it("rejects a production command without hostKey, naming the host and how to fix it", async () => {
    const props = rolloutProps();
    delete (props.connection as Record<string, unknown>).hostKey;
    const out = await runResource(remoteCommandHostKeyPinned, resourceArgs(type, "web-1-rollout", props));
    assert.equal(out.violations.length, 1);
    assert.match(
      out.violations[0],
      /web-1-rollout \(host 203\.0\.113\.10\) on production stack "prod" has no connection\.hostKey/,
    );
    assert.match(out.violations[0], /ssh-keyscan -t ed25519/);
    assert.doesNotMatch(out.violations[0], /PRIVATE KEY|b3BlbnNz/, "the private key is never echoed");
  });

  it("rejects an empty hostKey on prod but allows a missing one on dev", async () => {
    const empty = rolloutProps({ connection: { host: "h", privateKey: PRIVATE_KEY, hostKey: "  " } });
    assert.equal(
      (await runResource(remoteCommandHostKeyPinned, resourceArgs(type, "h-rollout", empty))).violations.length,
      1,
    );
    const missing = rolloutProps({ connection: { host: "h", privateKey: PRIVATE_KEY } });
    assert.deepEqual(
      (await runResource(remoteCommandHostKeyPinned, resourceArgs(type, "h-rollout", missing, { stack: "dev" })))
        .violations,
      [],
    );
  });

  it("honours productionStacks from policy config", async () => {
    const missing = rolloutProps({ connection: { host: "h", privateKey: PRIVATE_KEY } });
    const out = await runResource(
      remoteCommandHostKeyPinned,
      resourceArgs(type, "h-rollout", missing, { stack: "staging", config: { productionStacks: ["staging"] } }),
    );
    assert.match(out.violations[0] ?? "", /production stack "staging"/);
  });

  it("rejects a malformed hostKey on any stack", async () => {
    for (const bad of [
      "AAAAC3NzaC1lZDI1NTE5",
      "203.0.113.10 ssh-ed25519 AAAAC3Nza",
      "ssh-ed25519 AAAA\nssh-rsa BBBB",
    ]) {
      const props = rolloutProps({ connection: { host: "h", privateKey: PRIVATE_KEY, hostKey: bad } });
      const out = await runResource(
        remoteCommandHostKeyPinned,
        resourceArgs(type, "h-rollout", props, { stack: "dev" }),
      );
      assert.match(out.violations[0] ?? "", /not one authorized_keys-format key/, bad);
    }
  });

  it("ignores other resource types", async () => {
    const out = await runResource(
      remoteCommandHostKeyPinned,
      resourceArgs("command:local:Command", "x", { create: "true" }),
    );
    assert.deepEqual(out.violations, []);
  });
});

describe("command-text-no-secret-material (resource level)", () => {
  const type = "command:remote:Command";

  it("passes the program's rollout command: script, paths, hex fingerprints in triggers", async () => {
    const out = await runResource(commandTextNoSecretMaterial, resourceArgs(type, "web-1-rollout", rolloutProps()));
    assert.deepEqual(out.violations, []);
  });

  const leaks: Array<[string, Record<string, unknown>, RegExp]> = [
    ["a PEM key in create", { create: `echo '${PRIVATE_KEY}' > /root/.ssh/id` }, /create contains a PEM private key/],
    [
      "an AWS key id in environment",
      { environment: { AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE" } },
      /environment\.AWS_ACCESS_KEY_ID contains an AWS access key id/,
    ],
    [
      "a PASSWORD= assignment in update",
      { update: "DB_PASSWORD=hunter2hunter2 ./migrate" },
      /update contains a DB_PASSWORD= assignment with a literal value/,
    ],
    [
      "a SECRET_KEY in environment",
      { environment: { SECRET_KEY: "abc123def456" } },
      /environment\.SECRET_KEY contains a SECRET_KEY= assignment/,
    ],
    [
      "a high-entropy token in a trigger",
      { triggers: ["env:0123456789abcdef", "tok:Zx81LkQ0pR7mN2vB9cX4jH6gF3dS5aW1eT8yU0iO"] },
      /triggers\[1\] contains a high-entropy token of \d+ characters/,
    ],
    [
      "the stdin SECRET_KEY in delete",
      { delete: `rm -f /tmp/${SECRET_KEY}` },
      /delete contains the value of SECRET_KEY from the stdin of web-1-rollout/,
    ],
    [
      "the stdin DB_PASSWORD inside create",
      { create: `${ROLLOUT} --password ${DB_PASSWORD}` },
      /create contains the value of DB_PASSWORD from the stdin/,
    ],
  ];
  for (const [label, overrides, expected] of leaks) {
    it(`rejects ${label}, without echoing the value`, async () => {
      const out = await runResource(
        commandTextNoSecretMaterial,
        resourceArgs(type, "web-1-rollout", rolloutProps(overrides)),
      );
      assert.ok(
        out.violations.some((v) => expected.test(v)),
        `expected ${expected} in ${JSON.stringify(out.violations)}`,
      );
      for (const v of out.violations) {
        for (const secret of [
          SECRET_KEY,
          DB_PASSWORD,
          "hunter2hunter2",
          "AKIAIOSFODNN7EXAMPLE",
          "b3BlbnNzaC1rZXkt",
          "Zx81LkQ0pR7m",
          "abc123def456",
        ]) {
          assert.ok(!v.includes(secret), `message echoes a secret: ${v}`);
        }
      }
    });
  }

  it("references to variables are not literal assignments", () => {
    assert.deepEqual(
      findSecretMaterial('SECRET_KEY="${SECRET_KEY:-}"; export DB_PASSWORD=$DB_PASSWORD; grep -q "^SECRET_KEY=" "$f"'),
      [],
    );
  });

  it("during preview, an unknown stdin is skipped and the rest is still checked", async () => {
    const props = rolloutProps({ stdin: UNKNOWN_STRING });
    assert.deepEqual((await runResource(commandTextNoSecretMaterial, resourceArgs(type, "w", props))).violations, []);
    const leaking = rolloutProps({ stdin: UNKNOWN_STRING, update: "PASSWORD=abcdefgh1234 run" });
    assert.equal(
      (await runResource(commandTextNoSecretMaterial, resourceArgs(type, "w", leaking))).violations.length,
      1,
    );
  });

  it("during preview, an unknown trigger is skipped instead of failing the whole policy", async () => {
    const props = rolloutProps({ triggers: [UNKNOWN_STRING, "script:abc"] });
    assert.deepEqual((await runResource(commandTextNoSecretMaterial, resourceArgs(type, "w", props))).violations, []);
  });

  it("property: any safe-alphabet secret of 32+ characters in a command is flagged; hex digests never are", () => {
    const safe = [..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", ...SAFE_SPECIALS];
    const password = fc
      .array(fc.constantFrom(...safe), { minLength: 32, maxLength: 80 })
      .map((cs) => cs.join(""))
      .filter((s) => /[A-Z]/.test(s) && /[a-z]/.test(s) && /[0-9]/.test(s));
    fc.assert(fc.property(password, (pw) => findSecretMaterial(`${ROLLOUT} --key ${pw}`).length > 0));
    const hex = fc
      .array(fc.constantFrom(..."0123456789abcdef"), { minLength: 16, maxLength: 128 })
      .map((cs) => cs.join(""));
    fc.assert(
      fc.property(hex, (h) => findSecretMaterial(`env:${h} script:${h}`).length === 0 && !isHighEntropyToken(h)),
    );
  });
});

describe("command-text-no-stack-secret (stack level)", () => {
  const password = stackResource("random:index/randomPassword:RandomPassword", "generated-SECRET_KEY", {
    length: 64,
    result: SECRET_KEY,
  });
  const version = stackResource("aws:secretsmanager/secretVersion:SecretVersion", "store-version", {
    secretString: JSON.stringify({
      SECRET_KEY,
      DB_PASSWORD,
      HUBTEL_CLIENT_ID: "hubtel-client-1234",
      DEBUG: "False",
      DB_NAME: "poultry_db",
    }),
  });

  it("passes when no command text carries a stack secret (plain settings may appear)", async () => {
    const command = stackResource(
      "command:remote:Command",
      "web-1-rollout",
      rolloutProps({ create: `${ROLLOUT} --db poultry_db` }),
    );
    assert.deepEqual(await runStack(commandTextNoStackSecret, [password, version, command]), []);
  });

  it("reports a generated secret in another command's text, against that command's URN", async () => {
    const command = stackResource(
      "command:remote:Command",
      "web-2-rollout",
      rolloutProps({ stdin: "", create: `${ROLLOUT} # ${SECRET_KEY}` }),
    );
    const violations = await runStack(commandTextNoStackSecret, [password, version, command]);
    assert.ok(
      violations.some((v) => /web-2-rollout: create contains the result of generated-SECRET_KEY/.test(v.message)),
    );
    assert.ok(violations.every((v) => v.urn === command.urn && !v.message.includes(SECRET_KEY)));
  });

  it("reports a supplied credential from the Secrets Manager document", async () => {
    const command = stackResource("command:local:Command", "notify", {
      create: "curl -d client=hubtel-client-1234 https://example.com",
    });
    const violations = await runStack(commandTextNoStackSecret, [version, command]);
    assert.match(
      violations[0]?.message ?? "",
      /notify: create contains the value of HUBTEL_CLIENT_ID in store-version\.secretString/,
    );
  });

  it("during preview, an unknown RandomPassword result and secretString are skipped", async () => {
    const unknownPassword = stackResource("random:index/randomPassword:RandomPassword", "generated-SECRET_KEY", {
      length: 64,
      result: UNKNOWN_STRING,
    });
    const unknownVersion = stackResource("aws:secretsmanager/secretVersion:SecretVersion", "store-version", {
      secretString: UNKNOWN_STRING,
    });
    const command = stackResource("command:remote:Command", "web-1-rollout", rolloutProps({ stdin: UNKNOWN_STRING }));
    assert.deepEqual(await runStack(commandTextNoStackSecret, [unknownPassword, unknownVersion, command]), []);
  });
});

describe("generated-secret-strength", () => {
  const type = "random:index/randomPassword:RandomPassword";
  const good = {
    length: 64,
    special: true,
    overrideSpecial: "-_.+=,",
    upper: true,
    lower: true,
    numeric: true,
    minLower: 1,
    minUpper: 1,
    minNumeric: 1,
    minSpecial: 1,
    keepers: { rotation: "2026-11-25", rotate: "" },
  };

  it("passes the program's SECRET_KEY and a 32-character other secret", async () => {
    assert.deepEqual(
      (await runResource(generatedSecretStrength, resourceArgs(type, "generated-SECRET_KEY", good))).violations,
      [],
    );
    assert.deepEqual(
      (
        await runResource(
          generatedSecretStrength,
          resourceArgs(type, "generated-API_TOKEN", { ...good, length: 32, overrideSpecial: SAFE_SPECIALS }),
        )
      ).violations,
      [],
    );
  });

  it("requires 50 characters for SECRET_KEY and 32 for any other", async () => {
    const short = await runResource(
      generatedSecretStrength,
      resourceArgs(type, "generated-SECRET_KEY", { ...good, length: 49 }),
    );
    assert.match(
      short.violations[0] ?? "",
      /generated secret SECRET_KEY \(generated-SECRET_KEY\) is 49 characters long; Django's SECRET_KEY needs at least 50/,
    );
    const other = await runResource(
      generatedSecretStrength,
      resourceArgs(type, "generated-WEBHOOK_SECRET", { ...good, length: 31 }),
    );
    assert.match(
      other.violations[0] ?? "",
      /is 31 characters long; a generated secret needs at least 32\. Set generated\.WEBHOOK_SECRET\.length/,
    );
  });

  it("rejects unsafe specials and names them", async () => {
    const out = await runResource(
      generatedSecretStrength,
      resourceArgs(type, "generated-SECRET_KEY", { ...good, overrideSpecial: "-_#$'" }),
    );
    assert.equal(out.violations.length, 1);
    assert.match(out.violations[0], /outside the safe set -_\.\+=,: "#", "\$", "'"/);
  });

  it("rejects special characters without overrideSpecial (random's default set is unsafe)", async () => {
    const { overrideSpecial: _drop, ...noOverride } = good;
    const out = await runResource(generatedSecretStrength, resourceArgs(type, "generated-SECRET_KEY", noOverride));
    assert.match(out.violations[0] ?? "", /without overrideSpecial/);
    // `special` defaults to true in @pulumi/random.
    const { special: _s, ...noSpecialFlag } = noOverride;
    assert.equal(
      (await runResource(generatedSecretStrength, resourceArgs(type, "generated-SECRET_KEY", noSpecialFlag))).violations
        .length,
      1,
    );
  });

  it("accepts special: false with letters and digits only", async () => {
    const out = await runResource(
      generatedSecretStrength,
      resourceArgs(type, "generated-SECRET_KEY", { length: 60, special: false, overrideSpecial: "#$" }),
    );
    assert.deepEqual(out.violations, []);
  });

  it("rejects a delivered SECRET_KEY with the django-insecure- prefix or under 50 characters", async () => {
    const versionType = "aws:secretsmanager/secretVersion:SecretVersion";
    const insecure = "django-insecure-" + "x9".repeat(30);
    const out = await runResource(
      generatedSecretStrength,
      resourceArgs(versionType, "store-version", { secretString: JSON.stringify({ SECRET_KEY: insecure }) }),
    );
    assert.match(out.violations[0] ?? "", /SECRET_KEY in store-version\.secretString starts with django-insecure-/);
    assert.ok(!out.violations[0].includes(insecure));
    const short = await runResource(
      generatedSecretStrength,
      resourceArgs(versionType, "store-version", { secretString: JSON.stringify({ SECRET_KEY: "abcdefghij" }) }),
    );
    assert.match(short.violations[0] ?? "", /is 10 characters long; Django requires at least 50/);
    const fine = await runResource(
      generatedSecretStrength,
      resourceArgs(versionType, "store-version", { secretString: JSON.stringify({ SECRET_KEY }) }),
    );
    assert.deepEqual(fine.violations, []);
    const unknown = await runResource(
      generatedSecretStrength,
      resourceArgs(versionType, "store-version", { secretString: UNKNOWN_STRING }),
    );
    assert.deepEqual(unknown.violations, [], "unknown during preview: judged at up");
  });
});

describe("secrets-manager-production-kms", () => {
  const type = "aws:secretsmanager/secret:Secret";
  const good = {
    name: "pms-backend/prod",
    kmsKeyId: "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    recoveryWindowInDays: 30,
    tags: { Project: "pms-secrets", Stack: "prod", ManagedBy: "pulumi" },
  };

  it("passes a customer-managed key with a 30-day window", async () => {
    assert.deepEqual(
      (await runResource(secretsManagerProductionKms, resourceArgs(type, "store-secret", good))).violations,
      [],
    );
    const { recoveryWindowInDays: _w, ...awsDefaultWindow } = good;
    assert.deepEqual(
      (await runResource(secretsManagerProductionKms, resourceArgs(type, "store-secret", awsDefaultWindow))).violations,
      [],
    );
  });

  it("rejects a missing kmsKeyId and the AWS managed key (alias and alias ARN)", async () => {
    const { kmsKeyId: _k, ...noKey } = good;
    const none = await runResource(secretsManagerProductionKms, resourceArgs(type, "store-secret", noKey));
    assert.match(
      none.violations[0] ?? "",
      /production stack "prod" has no kmsKeyId, so it is encrypted with the AWS managed key aws\/secretsmanager/,
    );
    for (const managed of ["alias/aws/secretsmanager", "arn:aws:kms:eu-west-1:123456789012:alias/aws/secretsmanager"]) {
      const out = await runResource(
        secretsManagerProductionKms,
        resourceArgs(type, "store-secret", { ...good, kmsKeyId: managed }),
      );
      assert.match(out.violations[0] ?? "", /uses the AWS managed key/);
    }
  });

  it("rejects force delete (0) and a window under 7 days", async () => {
    const zero = await runResource(
      secretsManagerProductionKms,
      resourceArgs(type, "store-secret", { ...good, recoveryWindowInDays: 0 }),
    );
    assert.match(zero.violations[0] ?? "", /recoveryWindowInDays 0: deleting it is immediate and cannot be undone/);
    const six = await runResource(
      secretsManagerProductionKms,
      resourceArgs(type, "store-secret", { ...good, recoveryWindowInDays: 6 }),
    );
    assert.match(six.violations[0] ?? "", /recoveryWindowInDays 6; production needs at least 7 days/);
  });

  it("is not applicable on dev, even with force delete", async () => {
    const out = await runResource(
      secretsManagerProductionKms,
      resourceArgs(type, "store-secret", { name: "pms-backend/dev", recoveryWindowInDays: 0 }, { stack: "dev" }),
    );
    assert.deepEqual(out.violations, []);
    assert.match(out.notApplicable ?? "", /stack "dev" is not a production stack/);
  });

  it("skips an unknown kmsKeyId during preview but still checks the window", async () => {
    const out = await runResource(
      secretsManagerProductionKms,
      resourceArgs(type, "store-secret", { ...good, kmsKeyId: UNKNOWN_STRING, recoveryWindowInDays: 0 }),
    );
    assert.equal(out.violations.length, 1);
    assert.match(out.violations[0], /recoveryWindowInDays 0/);
  });
});

describe("rotation-keeper-age (advisory)", () => {
  const type = "random:index/randomPassword:RandomPassword";
  const withKeepers = (keepers: Record<string, string>) => ({
    length: 64,
    special: true,
    overrideSpecial: "-_",
    keepers,
  });

  it("is quiet for a keeper rotated within maxKeeperAgeDays", async () => {
    const out = await runResource(
      rotationKeeperAge,
      resourceArgs(type, "generated-SECRET_KEY", withKeepers({ rotation: isoDaysAgo(10), rotate: "" })),
    );
    assert.deepEqual(out.violations, []);
  });

  it("warns when the newest date keeper is older than the default 90 days", async () => {
    const old = isoDaysAgo(120);
    const out = await runResource(
      rotationKeeperAge,
      resourceArgs(type, "generated-SECRET_KEY", withKeepers({ rotation: old, rotate: isoDaysAgo(200) })),
    );
    assert.equal(out.violations.length, 1);
    assert.match(
      out.violations[0],
      new RegExp(`last rotated 12[01] days ago \\(newest keeper rotation=${old}\\), more than the 90 days allowed`),
    );
    assert.match(out.violations[0], /pulumi config set --path 'rotate\.SECRET_KEY'/);
  });

  it("uses the secret's own keeper when it is newer than the global one", async () => {
    const out = await runResource(
      rotationKeeperAge,
      resourceArgs(type, "generated-SECRET_KEY", withKeepers({ rotation: isoDaysAgo(400), rotate: isoDaysAgo(5) })),
    );
    assert.deepEqual(out.violations, []);
  });

  it("follows maxKeeperAgeDays from policy config", async () => {
    const keepers = withKeepers({ rotation: isoDaysAgo(40) });
    assert.equal(
      (
        await runResource(
          rotationKeeperAge,
          resourceArgs(type, "generated-SECRET_KEY", keepers, { config: { maxKeeperAgeDays: 30 } }),
        )
      ).violations.length,
      1,
    );
    assert.equal(
      (await runResource(rotationKeeperAge, resourceArgs(type, "generated-SECRET_KEY", keepers))).violations.length,
      0,
    );
  });

  it("says the age cannot be judged for a keeper that is not a date, or no keeper", async () => {
    const out = await runResource(
      rotationKeeperAge,
      resourceArgs(type, "generated-SECRET_KEY", withKeepers({ rotation: "initial" })),
    );
    assert.match(
      out.violations[0] ?? "",
      /keeper rotation="initial" is not an ISO date \(YYYY-MM-DD\), so the age of this secret cannot be judged/,
    );
    const none = await runResource(rotationKeeperAge, resourceArgs(type, "generated-SECRET_KEY", { length: 64 }));
    assert.match(none.violations[0] ?? "", /has no rotation keeper .* cannot be judged/);
  });

  it("parses ISO dates strictly", () => {
    assert.equal(parseKeeperDate("2026-11-25"), Date.UTC(2026, 10, 25));
    assert.ok(parseKeeperDate("2026-11-25T10:00:00Z"));
    for (const bad of ["2026-02-30", "25/11/2026", "2026-11", "v2", ""])
      assert.equal(parseKeeperDate(bad), undefined, bad);
    assert.equal(keeperAgeFinding("s", "K", { rotation: "2026-01-01" }, 90, Date.UTC(2026, 2, 1)), undefined);
    assert.match(keeperAgeFinding("s", "K", { rotation: "2026-01-01" }, 30, Date.UTC(2026, 2, 1)) ?? "", /59 days ago/);
  });
});

describe("what the policy SDK really passes (through its analyze RPC handler)", () => {
  // Internal modules of @pulumi/policy and the protobuf classes it reads; used only to pin behaviour.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const server = require("@pulumi/policy/server") as {
    makeAnalyzeRpcFun: (
      n: string,
      v: string,
      level: string,
      p: unknown[],
    ) => (call: unknown, cb: (err: unknown, resp: unknown) => void) => Promise<void>;
  };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const analyzer = require("@pulumi/pulumi/proto/analyzer_pb") as Record<
    string,
    new () => Record<string, (v?: unknown) => unknown>
  >;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Struct } = require("google-protobuf/google/protobuf/struct_pb") as {
    Struct: { fromJavaScript(v: unknown): unknown };
  };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const rpc = require("@pulumi/pulumi/runtime/rpc") as { specialSigKey: string; specialSecretSig: string };
  /** How the engine sends a secret value: `{ <sig key>: <secret sig>, value }`. */
  const SECRET_SIG = { [rpc.specialSigKey]: rpc.specialSecretSig };

  async function analyze(type: string, name: string, props: Record<string, unknown>): Promise<string[]> {
    const request = new analyzer.AnalyzeRequest();
    request.setType(type);
    request.setName(name);
    request.setUrn(urnOf("prod", type, name));
    request.setProperties(Struct.fromJavaScript(props));
    request.setOptions(new analyzer.AnalyzerResourceOptions());
    const fn = server.makeAnalyzeRpcFun("pms-secrets", "0.1.0", "mandatory", policies);
    const response = await new Promise<Record<string, () => unknown>>(
      (resolve, reject) =>
        void fn({ request }, (err: unknown, resp: unknown) =>
          err
            ? reject(err instanceof Error ? err : new Error(JSON.stringify(err)))
            : resolve(resp as Record<string, () => unknown>),
        ),
    );
    return (response.getDiagnosticsList() as Array<Record<string, () => string>>).map(
      (d) => `${d.getPolicyname()}: ${d.getMessage()}`,
    );
  }

  it("hands a secret input (stdin) to the policy in clear text, so a leak of it is caught", async () => {
    const props = rolloutProps({
      create: `${ROLLOUT} ${DB_PASSWORD}`,
      stdin: { ...SECRET_SIG, value: `DB_PASSWORD='${DB_PASSWORD}'\n` },
    });
    const diagnostics = await analyze("command:remote:Command", "web-1-rollout", props);
    assert.ok(
      diagnostics.some((d) =>
        /command-text-no-secret-material: .*contains the value of DB_PASSWORD from the stdin/s.test(d),
      ),
      diagnostics.join("\n"),
    );
  });

  it("an unknown stdin during preview produces no error and no 'can't run policy' advisory", async () => {
    const diagnostics = await analyze(
      "command:remote:Command",
      "web-1-rollout",
      rolloutProps({ stdin: UNKNOWN_STRING }),
    );
    assert.deepEqual(diagnostics, []);
  });

  it("readProp maps the SDK's unknown sentinel to UNKNOWN instead of throwing", () => {
    const proxied = unknownCheckingProxy({ result: UNKNOWN_STRING, length: 64 });
    assert.throws(() => proxied.result, /can't be known during preview/);
    assert.equal(readProp(proxied, "result"), UNKNOWN);
    assert.equal(readProp(proxied, "length"), 64);
  });
});

describe("env file parsing used to find a command's own secrets", () => {
  it("reads KEY='value' lines and skips comments", () => {
    assert.deepEqual(parseEnvFile("# c\nSECRET_KEY='a b'\nexport DEBUG=False\n\nX=\"y\"\n"), [
      ["SECRET_KEY", "a b"],
      ["DEBUG", "False"],
      ["X", "y"],
    ]);
  });
});
