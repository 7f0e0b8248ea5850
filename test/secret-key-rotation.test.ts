/**
 * SECRET_KEY rotation modes (issue 10): config, rollout arguments, what a preview shows, the
 * alphabet without a comma, and that the JWT signing key rotates on its own.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { ROLLOUT_SCRIPT } from "../components/host-rollout";
import { parseEnvFile } from "../components/env-file";
import { describeSecretKeyRotation, secretKeyRolloutArgs, SETTINGS_SNIPPET } from "../components/secret-key-rotation";
import { isEmergencyKeeper } from "../components/config/secret-key";
import { baseConfig, defined } from "./fixtures";
import { assertProblem, rawConfig as raw, stackProblems } from "./config-check";
import { parseStackConfig } from "../components/config";
import { runProgram, TYPES } from "./harness";

function problemsOf(overrides: Record<string, unknown>): readonly string[] {
  return stackProblems(baseConfig("dev", overrides), "dev");
}

const run = (overrides: Record<string, unknown> = {}, extra: { preview?: boolean; randomSeed?: string } = {}) =>
  runProgram({ stack: "dev", config: defined(baseConfig("dev", overrides)), ...extra });

const commandOf = (r: Awaited<ReturnType<typeof run>>, host: string) =>
  String(r.find(TYPES.command, `${host}-rollout`).inputs.create);

test("secretKeyFallbacks: default 1, 0..5 accepted, anything else refused with the range", () => {
  const parsed = (v: unknown) => parseStackConfig(raw(baseConfig("dev", { secretKeyFallbacks: v })), "dev");
  assert.equal(parseStackConfig(raw(baseConfig("dev")), "dev").settings.secretKey.fallbacks, 1);
  assert.equal(parsed(0).settings.secretKey.fallbacks, 0);
  assert.equal(parsed("5").settings.secretKey.fallbacks, 5);
  for (const bad of [6, -1, "two", 1.5]) {
    assertProblem(problemsOf({ secretKeyFallbacks: bad }), "secretKeyFallbacks", /is not a whole number from 0 to 5/);
  }
});

test("SECRET_KEY_FALLBACKS cannot be configured by any route: the hosts write it", () => {
  const base = baseConfig("dev");
  const routes: Record<string, Record<string, unknown>> = {
    env: { env: { ...(base.env as object), SECRET_KEY_FALLBACKS: "x" } },
    secrets: { secrets: { ...(base.secrets as object), SECRET_KEY_FALLBACKS: "old-key-value-0123456789" } },
    generated: { generated: { ...(base.generated as object), SECRET_KEY_FALLBACKS: {} } },
  };
  for (const [section, overrides] of Object.entries(routes)) {
    const line = assertProblem(problemsOf(overrides), `${section}.SECRET_KEY_FALLBACKS`, /written by each host/);
    assert.match(line, /secretKeyFallbacks/);
    assert.doesNotMatch(line, /old-key-value/);
  }
});

test("emergency is a keeper of SECRET_KEY starting with 'emergency'; other keepers are routine", () => {
  assert.ok(isEmergencyKeeper("emergency-2026-11-26"));
  assert.ok(isEmergencyKeeper("Emergency 2026-11-26 leaked backup"));
  assert.ok(!isEmergencyKeeper("2026-11-26"));
  assert.ok(!isEmergencyKeeper("not-an-emergency"));
  const mode = (o: Record<string, unknown>) => parseStackConfig(raw(baseConfig("dev", o)), "dev").settings.secretKey;
  assert.deepEqual(mode({}), { fallbacks: 1, emergency: false });
  assert.deepEqual(mode({ rotate: { SECRET_KEY: "emergency-2026-11-26" } }), {
    fallbacks: 1,
    emergency: true,
    emergencyKeeper: "rotate.SECRET_KEY",
  });
  assert.equal(mode({ rotation: "emergency-1" }).emergencyKeeper, "rotation");
  // Another secret's emergency keeper is not SECRET_KEY's.
  assert.equal(mode({ rotate: { JWT_SIGNING_KEY: "emergency-1" } }).emergency, false);
});

test("rollout arguments: nothing for the default, the count when changed, --emergency alone in an emergency", () => {
  assert.deepEqual(secretKeyRolloutArgs({ fallbacks: 1, emergency: false }), []);
  assert.deepEqual(secretKeyRolloutArgs({ fallbacks: 0, emergency: false }), ["--secret-key-fallbacks", "0"]);
  assert.deepEqual(secretKeyRolloutArgs({ fallbacks: 3, emergency: false }), ["--secret-key-fallbacks", "3"]);
  assert.deepEqual(secretKeyRolloutArgs({ fallbacks: 3, emergency: true, emergencyKeeper: "rotation" }), [
    "--emergency",
  ]);
});

test("preview: an unchanged stack keeps its command text; routine and emergency differ at a glance", async () => {
  const routine = await run({ rotate: { SECRET_KEY: "2026-11-26" } }, { preview: true });
  const emergency = await run({ rotate: { SECRET_KEY: "emergency-2026-11-26" } }, { preview: true });
  const retired = await run({ secretKeyFallbacks: 0 }, { preview: true });
  for (const host of ["web1", "web2"]) {
    assert.doesNotMatch(commandOf(routine, host), /--emergency|--secret-key-fallbacks/);
    assert.match(commandOf(emergency, host), / --emergency /);
    assert.match(commandOf(retired, host), / --secret-key-fallbacks 0 /);
  }
  assert.match(String(routine.outputs.secretKeyRotation), /^graceful: hosts keep the previous SECRET_KEY in/);
  assert.match(String(emergency.outputs.secretKeyRotation), /^EMERGENCY \(rotate\.SECRET_KEY\)/);
  assert.match(String(retired.outputs.secretKeyRotation), /retired/);
  assert.equal(routine.warnings.filter((w) => /emergency/i.test(w)).length, 0);
  const warned = emergency.warnings.filter((w) => /keep NO fallback/.test(w));
  assert.equal(warned.length, 1, emergency.warnings.join("\n"));
  assert.match(warned[0], /rotate\.SECRET_KEY starts with "emergency"/);
});

test("describeSecretKeyRotation names the count when more than one key is kept", () => {
  assert.match(describeSecretKeyRotation({ fallbacks: 3, emergency: false }), /up to 3/);
});

test("the env file the program sends never carries SECRET_KEY_FALLBACKS (the host adds it)", async () => {
  const r = await run({ secretKeyFallbacks: 2 });
  const env = parseEnvFile(String(r.find(TYPES.command, "web1-rollout").inputs.stdin).slice(ROLLOUT_SCRIPT.length));
  assert.ok(env.SECRET_KEY);
  assert.equal(env.SECRET_KEY_FALLBACKS, undefined);
});

test("SECRET_KEY draws from the safe alphabet without the comma (the list separator); other secrets keep it", async () => {
  const r = await run();
  assert.equal(r.find(TYPES.password, "generated-SECRET_KEY").inputs.overrideSpecial, "-_.+=");
  assert.equal(r.find(TYPES.password, "generated-JWT_SIGNING_KEY").inputs.overrideSpecial, "-_.+=,");
});

test("the JWT signing key rotates on its own keeper, SECRET_KEY on its own, emergency included", async () => {
  const envOf = (r: Awaited<ReturnType<typeof run>>) =>
    parseEnvFile(String(r.find(TYPES.command, "web1-rollout").inputs.stdin).slice(ROLLOUT_SCRIPT.length));
  const before = envOf(await run());
  const jwt = envOf(await run({ rotate: { JWT_SIGNING_KEY: "2026-11-26" } }));
  assert.equal(jwt.SECRET_KEY, before.SECRET_KEY);
  assert.notEqual(jwt.JWT_SIGNING_KEY, before.JWT_SIGNING_KEY);
  const sk = envOf(await run({ rotate: { SECRET_KEY: "emergency-2026-11-26" } }));
  assert.notEqual(sk.SECRET_KEY, before.SECRET_KEY);
  assert.equal(sk.JWT_SIGNING_KEY, before.JWT_SIGNING_KEY);
});

test("the README quotes the settings.py line for fallbacks exactly", () => {
  const readme = fs.readFileSync(path.join(__dirname, "..", "README.md"), "utf8");
  assert.ok(readme.includes(SETTINGS_SNIPPET), "README must show the SECRET_KEY_FALLBACKS settings line");
});
