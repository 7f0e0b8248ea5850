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
  "pms-secrets:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n",
  "pms-secrets:secrets": { DB_PASSWORD: "from-the-operator" },
};

test("Pulumi.yaml declares project pms-secrets on nodejs with typed, described config", () => {
  const p = load("Pulumi.yaml") as {
    name: string;
    runtime: { name: string };
    config: Record<string, { type: string; description: string }>;
  };
  assert.equal(p.name, "pms-secrets");
  assert.equal(p.runtime.name, "nodejs");
  for (const [k, d] of Object.entries(p.config)) {
    assert.ok((KNOWN_KEYS as readonly string[]).includes(k), `${k} is declared but not read by the program`);
    assert.ok(["string", "integer", "boolean"].includes(d.type), k);
    assert.ok(d.description.length > 10, k);
  }
});

test("shipped dev stack: only the secrets the operator must add are missing", () => {
  assert.deepEqual(problems("dev").sort(), ["pms-secrets:secrets.DB_PASSWORD", "pms-secrets:sshPrivateKey"]);
  assert.deepEqual(problems("dev", userSecrets), []);
});

test("shipped prod stack: the host key placeholder is refused until replaced", () => {
  assert.deepEqual(problems("prod", userSecrets), ["pms-secrets:hosts[0].hostKey"]);
  const hosts = [{ name: "web1", address: "web1.pms.example.com", user: "deploy", hostKey: TEST_HOST_KEY }];
  assert.deepEqual(problems("prod", { ...userSecrets, "pms-secrets:hosts": hosts }), []);
});

test("shipped stack files hold no secret material", () => {
  for (const f of ["Pulumi.dev.yaml", "Pulumi.prod.yaml"]) {
    const text = fs.readFileSync(path.join(root, f), "utf8");
    assert.doesNotMatch(text, /PRIVATE KEY|PASSWORD:|SECRET_KEY: ['"]?[^{]/, f);
  }
});
