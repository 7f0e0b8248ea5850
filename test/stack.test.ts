/** The plain functions stack.ts wires together, tested on plain values. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseStackConfig, RawConfig } from "../components/config";
import { envDocument, envFileHeader, envKeysOf, envValues, keepersOf, secretTags } from "../components/stack";
import { baseConfig, defined } from "./fixtures";

const raw = (config: Record<string, unknown>): RawConfig =>
  Object.fromEntries(
    Object.entries(defined(config)).map(([k, v]) => [
      `pms-secrets:${k}`,
      typeof v === "string" ? v : JSON.stringify(v),
    ]),
  );

test("env file header names project and stack and says not to edit", () => {
  assert.deepEqual(envFileHeader("pms-secrets", "prod"), [
    "Managed by pms-secrets (stack prod). Do not edit: the next rollout overwrites this file.",
    "Rotate with a keeper change in the stack config; see the project README.",
  ]);
});

test("env values: plain, supplied and generated merged into one map", () => {
  assert.deepEqual(envValues({ DEBUG: "False" }, { DB_PASSWORD: "p" }, { SECRET_KEY: "k" }), {
    DEBUG: "False",
    DB_PASSWORD: "p",
    SECRET_KEY: "k",
  });
});

test("the stored document is JSON with sorted keys: equal values give equal bytes", () => {
  assert.equal(envDocument({ B: "2", A: "1" }), '{"A":"1","B":"2"}');
  assert.equal(envDocument({ A: "1", B: "2" }), envDocument({ B: "2", A: "1" }));
});

test("env keys by origin and keepers come from the settings, names only", () => {
  const { settings } = parseStackConfig(raw({ ...baseConfig("dev"), rotate: { JWT_SIGNING_KEY: "r2" } }), "dev");
  assert.deepEqual(envKeysOf(settings), {
    plain: ["ALLOWED_HOSTS", "DB_HOST", "DB_NAME", "DB_PORT", "DB_USER", "DEBUG"],
    supplied: ["DB_PASSWORD", "HUBTEL_CLIENT_ID", "HUBTEL_CLIENT_SECRET", "PAYSTACK_SECRET_KEY"],
    generated: ["JWT_SIGNING_KEY", "SECRET_KEY"],
  });
  assert.deepEqual(keepersOf(settings), { rotation: "2026-11-01", rotate: { SECRET_KEY: "", JWT_SIGNING_KEY: "r2" } });
});

test("the secret's tags name project and stack, and mark production for the policy pack", () => {
  const base = { project: "pms-secrets", stack: "staging" };
  assert.deepEqual(secretTags({ ...base, production: false }), {
    Project: "pms-secrets",
    Stack: "staging",
    ManagedBy: "pulumi",
  });
  assert.equal(secretTags({ ...base, production: true }).Production, "true");
});
