/** The shipped Pulumi.yaml and stack files, read the way the Pulumi CLI hands them to the program. */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as yaml from "js-yaml";
import { ConfigError, KNOWN_KEYS, parseStackConfig, RawConfig } from "../components/config";
import { TEST_HOST_KEY } from "./harness";

const root = path.join(__dirname, "..");
const load = (f: string) => yaml.load(fs.readFileSync(path.join(root, f), "utf8")) as Record<string, unknown>;

/** Project defaults from Pulumi.yaml, overlaid by the stack file; objects become JSON like `pulumi config --path`. */
function rawConfigOf(stack: string, extra: Record<string, unknown> = {}): RawConfig {
  const project = load("Pulumi.yaml") as { config: Record<string, { default?: unknown }> };
  const raw: Record<string, string> = {};
  for (const [k, decl] of Object.entries(project.config)) {
    if (decl.default !== undefined) raw[`pms-secrets:${k}`] = JSON.stringify(decl.default).replace(/^"(.*)"$/, "$1");
  }
  const stackFile = load(`Pulumi.${stack}.yaml`) as { config: Record<string, unknown> };
  for (const [k, v] of Object.entries({ ...stackFile.config, ...extra })) {
    raw[k] = typeof v === "string" ? v : JSON.stringify(v);
  }
  return raw;
}

function problems(stack: string, extra: Record<string, unknown> = {}): string[] {
  try {
    parseStackConfig(rawConfigOf(stack, extra), stack);
    return [];
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems.map((p) => p.split(": ")[0]);
  }
}

const userSecrets = {
  "pms-secrets:secrets": { DB_PASSWORD: "from-the-operator" },
};

test("Pulumi.yaml declares project pms-secrets on nodejs; every key read by the program, defaulted, untyped", () => {
  const p = load("Pulumi.yaml") as {
    name: string;
    runtime: { name: string };
    config: Record<string, { type?: string; secret?: boolean; default?: unknown; description: string }>;
  };
  assert.equal(p.name, "pms-secrets");
  assert.equal(p.runtime.name, "nodejs");
  for (const [k, d] of Object.entries(p.config)) {
    assert.ok((KNOWN_KEYS as readonly string[]).includes(k), `${k} is declared but not read by the program`);
    // A declared type, `secret: true` or a missing default makes the CLI stop at its first finding
    // before the program runs; the program lists every problem at once instead (see Pulumi.yaml).
    assert.equal(d.type, undefined, `${k} declares a type`);
    assert.equal(d.secret, undefined, `${k} declares secret`);
    assert.notEqual(d.default, undefined, `${k} has no default, so the CLI would require it`);
    assert.ok(d.description.length > 10, k);
  }
});

test("shipped dev stack: the REPLACE address and the secrets the operator must add are all listed at once", () => {
  assert.deepEqual(problems("dev").sort(), ["pms-secrets:hosts[0].address", "pms-secrets:secrets.DB_PASSWORD"]);
  const hosts = [{ name: "dev1", address: "10.0.0.5", user: "deploy" }];
  assert.deepEqual(problems("dev", { ...userSecrets, "pms-secrets:hosts": hosts }), []);
});

test("no shipped stack file or project default sets an SSH credential, and every host logs in as deploy (never root)", () => {
  const project = load("Pulumi.yaml") as { config: Record<string, unknown> };
  assert.ok(
    !("sshPrivateKey" in project.config),
    "Pulumi.yaml declares sshPrivateKey (its default reaches the program)",
  );
  for (const stack of ["dev", "prod"]) {
    const { config } = load(`Pulumi.${stack}.yaml`) as { config: Record<string, unknown> };
    assert.ok(!Object.keys(config).some((k) => /sshPrivateKey|password|privateKey/i.test(k)), `Pulumi.${stack}.yaml`);
    const hosts = config["pms-secrets:hosts"] as Array<{ user?: string }>;
    for (const h of hosts)
      assert.equal(h.user, "deploy", `Pulumi.${stack}.yaml logs in as ${h.user ?? "root (default)"}`);
  }
});

test("shipped prod stack: address, host key and KMS placeholders are refused until replaced", () => {
  assert.deepEqual(problems("prod", userSecrets).sort(), [
    "pms-secrets:hosts[0].address",
    "pms-secrets:hosts[0].hostKey",
    "pms-secrets:kmsKeyId",
  ]);
  const hosts = [{ name: "web1", address: "10.0.0.5", user: "deploy", hostKey: TEST_HOST_KEY }];
  const filled = { ...userSecrets, "pms-secrets:hosts": hosts, "pms-secrets:kmsKeyId": "alias/pms-secrets-prod" };
  assert.deepEqual(problems("prod", filled), []);
});

test("shipped stacks: the health check sends the public name Django allows; the example name is a warning", () => {
  const hosts = [{ name: "web1", address: "10.0.0.5", user: "deploy", hostKey: TEST_HOST_KEY }];
  const parsed = parseStackConfig(
    rawConfigOf("prod", {
      ...userSecrets,
      "pms-secrets:hosts": hosts,
      "pms-secrets:kmsKeyId": "alias/pms-secrets-prod",
    }),
    "prod",
  );
  assert.equal(parsed.settings.env.ALLOWED_HOSTS, "api.pms.example.com");
  assert.equal(parsed.settings.app.healthHost, "api.pms.example.com");
  assert.deepEqual(parsed.settings.app.healthUrls, ["http://127.0.0.1:8000/health/"]);
  assert.ok(
    parsed.warnings.some((w) =>
      /^pms-secrets:env\.ALLOWED_HOSTS names api\.pms\.example\.com is a documentation name/.test(w),
    ),
  );
});

test("shipped stack files hold no secret material", () => {
  for (const f of ["Pulumi.dev.yaml", "Pulumi.prod.yaml"]) {
    const text = fs.readFileSync(path.join(root, f), "utf8");
    assert.doesNotMatch(text, /PRIVATE KEY|PASSWORD:|SECRET_KEY: ['"]?[^{]/, f);
  }
});
