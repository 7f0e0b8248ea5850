/**
 * The preview excerpt in the README: rendered from the real program under mocks, kept in
 * sync, shows the replacements a SECRET_KEY rotation causes, and shows no secret value.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { ROLLOUT_SCRIPT } from "../components/host-rollout";
import { parseEnvFile } from "../components/env-file";
import {
  baseConfig,
  defined,
  SENTINEL_DB_PASSWORD,
  SENTINEL_HUBTEL,
  SENTINEL_PAYSTACK,
  SENTINEL_SSH_KEY,
} from "./fixtures";
import { RunResult, runProgram, TYPES } from "./harness";
import { previewChange } from "./preview";
import { ROTATION, secretKeyRotationPreview } from "./preview-excerpt";

/** The code block under the README's "What a reviewer sees in a preview" heading. */
function readmeExcerpt(): string {
  const readme = fs.readFileSync(path.join(__dirname, "..", "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## What a reviewer sees in a preview"));
  const match = /```\n([\s\S]*?)\n```/.exec(section);
  assert.ok(match, "the section has a code block");
  return match[1];
}

/** The lines of the tree table (between the title and the first blank line after it). */
function planOf(text: string, name: string): string {
  const row = text.split("\n").find((l) => new RegExp(`\\s${name}\\s`).test(`${l} `) && l.includes("─ "));
  assert.ok(row, `no tree row for ${name}`);
  return row;
}

function generatedValues(r: RunResult): string[] {
  const stdin = String(r.find(TYPES.command, "web1-rollout").inputs.stdin);
  const env = parseEnvFile(stdin.slice(ROLLOUT_SCRIPT.length));
  return [env.SECRET_KEY, env.JWT_SIGNING_KEY];
}

test("the README shows exactly what the renderer produces for a SECRET_KEY rotation", async () => {
  assert.equal(readmeExcerpt(), (await secretKeyRotationPreview()).trimEnd());
});

test("a SECRET_KEY rotation replaces SECRET_KEY, the secret version and both rollouts, not JWT_SIGNING_KEY", async () => {
  const text = await secretKeyRotationPreview();
  for (const name of ["generated-SECRET_KEY", "store-version", "web1-rollout", "web2-rollout"]) {
    assert.match(planOf(text, name), /^ \+- .* replace {2}\[diff: ~/, name);
  }
  for (const name of ["generated-JWT_SIGNING_KEY", "store-secret"]) {
    assert.doesNotMatch(planOf(text, name), /replace|update/, name);
  }
  assert.match(text, /~ keepers: \{\n\s+\+ rotate {2}: "2026-11-25"\n/);
  assert.match(text, /~ stdin {3}: \[secret\] => \[secret\]/);
  assert.match(text, /~ secretString: \[secret\] => \[secret\]/);
  assert.match(text, /\+ triggers: output<string>/, "the new env fingerprint is not known before the new key exists");
  assert.match(text, /~ secretVersionId: "version-[0-9a-f]+" => output<string>/);
  assert.match(text, /\+-4 to replace\n {4}4 changes\. 7 unchanged\n$/);
});

test("no secret value appears in the preview: supplied sentinels, SSH key, generated values (old or new)", async () => {
  const { text, before } = await previewChange(
    "prod",
    defined(baseConfig("prod")),
    defined(baseConfig("prod", ROTATION)),
  );
  // The values the rotation would produce, from a normal (non-preview) run of the new config.
  const rotated = await runProgram({ stack: "prod", config: defined(baseConfig("prod", ROTATION)) });
  const secrets = [
    SENTINEL_DB_PASSWORD,
    SENTINEL_PAYSTACK,
    SENTINEL_HUBTEL,
    SENTINEL_SSH_KEY.split("\n")[1],
    ...generatedValues(before),
    ...generatedValues(rotated),
  ];
  assert.equal(secrets.filter((s) => s.length < 20).length, 0, "every value is long enough to be unmistakable");
  for (const s of secrets) assert.ok(!text.includes(s), `the preview shows ${s.slice(0, 8)}...`);
  assert.ok(!text.includes("04da6b54-80e4-46f7-96ec-b56ff0331ba9"), "unknowns print as output<string>");
});

test("the renderer shows plain changes: a DB_HOST change updates the env fingerprint in triggers", async () => {
  const env = baseConfig("prod").env as Record<string, unknown>;
  const { text, before, after } = await previewChange(
    "prod",
    defined(baseConfig("prod")),
    defined(baseConfig("prod", { env: { ...env, DB_HOST: "10.0.0.5" } })),
  );
  const fingerprint = (r: RunResult) =>
    (r.outputs.hosts as Record<string, { envFingerprint: string }>).web1.envFingerprint;
  const [was, now] = [fingerprint(before), fingerprint(after)];
  assert.match(now, /^[0-9a-f]{16}$/, "no generated secret is replaced, so the new fingerprint is known");
  assert.notEqual(was, now);
  assert.ok(text.includes(`~ [0]: "env:${was}" => "env:${now}"`), text);
  assert.ok(text.includes(`~ envFingerprint: "${was}" => "${now}"`), text);
  assert.doesNotMatch(planOf(text, "generated-SECRET_KEY"), /replace/);
  assert.match(planOf(text, "web1-rollout"), /replace/);
});
