/**
 * docs/CONFIG.md against the config parsers: one row per key the code reads (and no row for a key
 * it does not), each whole-number key's range and default as the parser has them, each choice
 * key's choices, and every config range inside what the host agent accepts for the flag it
 * becomes. The key lists and ranges are the parsers' own exports, not copies.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { load } from "js-yaml";
import { KNOWN_KEYS, RETIRED_KEYS } from "../components/config";
import { APP_KEYS, APP_RANGES, DEFAULT_ENV_FILE, FAIL_LEVELS, UNMANAGED_KEYS } from "../components/config/app";
import { REQUIRED_SETTINGS } from "../components/config/env";
import { DB_PASSWORD_SPEC_KEYS, GENERATED_SPEC_KEYS } from "../components/config/generated";
import { HOST_KEYS, PORT } from "../components/config/hosts";
import { LOGIN_PROBE_KEYS } from "../components/config/login-probe";
import type { NumberRange } from "../components/config/read";
import { ROLLOUT_KEYS } from "../components/config/rollout";
import { RECOMMENDED_SUPPLIED_SECRETS, REQUIRED_SUPPLIED_SECRETS } from "../components/config/secrets";
import { SSH_RANGES } from "../components/config/ssh";
import { RECOVERY_WINDOW } from "../components/config/store";
import { ALPHABETS } from "../components/alphabet";
import { describeBatches, DEFAULT_BATCHES, DEFAULT_SECRET_KEY_PHASES } from "../components/rollout-plan";
import { SECRET_KEY_FALLBACKS_RANGE } from "../components/config/secret-key";
import { AGENT_OPTIONS } from "../components/agent-options";
import { DEFAULT_GENERATED_LENGTH, MAX_GENERATED_LENGTH, minimumLength } from "../components/secret-rules";

const ROOT = path.join(__dirname, "..");
const DOC = fs.readFileSync(path.join(ROOT, "docs", "CONFIG.md"), "utf8");

interface Row {
  key: string;
  type: string;
  default: string;
  range: string;
  example: string;
  what: string;
}

/** The rows of CONFIG.md's reference table, by key (a key twice is an error). */
function rows(doc: string): Map<string, Row> {
  const out = new Map<string, Row>();
  const header = doc.indexOf("| key | type | default | range | example | what it does |");
  assert.ok(header >= 0, "docs/CONFIG.md has the reference table");
  for (const line of doc.slice(header).split("\n").slice(2)) {
    if (!line.startsWith("|")) break;
    const cells = line
      .slice(1, -1)
      .split(/ \| /)
      .map((c) => c.trim());
    assert.equal(cells.length, 6, `six cells: ${line}`);
    const key = /^`([^`]+)`$/.exec(cells[0])?.[1];
    assert.ok(key, `the first cell is one key in backticks: ${line}`);
    assert.ok(!out.has(key), `${key} has one row`);
    out.set(key, { key, type: cells[1], default: cells[2], range: cells[3], example: cells[4], what: cells[5] });
  }
  return out;
}

/** Every key the parsers read, in the table's notation (`hosts[].name`, `generated.<KEY>.length`). */
function codeKeys(): string[] {
  return [
    ...KNOWN_KEYS,
    ...RETIRED_KEYS,
    ...HOST_KEYS.map((k) => `hosts[].${k}`),
    ...APP_KEYS.map((k) => `app.${k}`),
    ...LOGIN_PROBE_KEYS.map((k) => `app.loginProbe.${k}`),
    ...ROLLOUT_KEYS.map((k) => `rollout.${k}`),
    ...GENERATED_SPEC_KEYS.map((k) => `generated.<KEY>.${k}`),
    ...DB_PASSWORD_SPEC_KEYS.map((k) => `generated.DB_PASSWORD.${k}`),
    ...REQUIRED_SETTINGS.map((k) => `env.${k}`),
    ...[...REQUIRED_SUPPLIED_SECRETS, ...RECOMMENDED_SUPPLIED_SECRETS].map((k) => `secrets.${k}`),
  ];
}

const table = rows(DOC);

test("docs/CONFIG.md has a row for every key the parsers read, and no row for a key they do not", () => {
  const code = new Set(codeKeys());
  const documented = new Set(table.keys());
  assert.deepEqual(
    [...code].filter((k) => !documented.has(k)),
    [],
    "keys the code reads without a row in docs/CONFIG.md",
  );
  assert.deepEqual(
    [...documented].filter((k) => !code.has(k)),
    [],
    "rows in docs/CONFIG.md for keys the code does not read",
  );
});

test("docs/CONFIG.md gives every row a type, default, range, example and meaning, each short", () => {
  for (const r of table.values()) {
    for (const [col, v] of Object.entries(r) as Array<[string, string]>) {
      assert.ok(v !== "", `${r.key}: ${col} is empty`);
      assert.ok(
        v.length <= 200,
        `${r.key}: the ${col} cell is ${v.length} characters (detail belongs in a linked page)`,
      );
    }
  }
});

/** Whole-number keys and the parser's range for each. */
const RANGES: Record<string, NumberRange> = {
  "hosts[].port": PORT,
  sshTimeoutSeconds: SSH_RANGES.sshTimeoutSeconds,
  sshAttempts: SSH_RANGES.sshAttempts,
  secretKeyFallbacks: SECRET_KEY_FALLBACKS_RANGE,
  ...Object.fromEntries(Object.entries(APP_RANGES).map(([k, r]) => [`app.${k}`, r])),
};

test("docs/CONFIG.md quotes each whole-number key's range and default as the parser has them", () => {
  for (const [key, range] of Object.entries(RANGES)) {
    const r = table.get(key);
    assert.ok(r, `${key} has a row`);
    assert.equal(r.range, `${range.min}-${range.max}`, `${key}: range`);
    assert.equal(r.default, `\`${range.default}\``, `${key}: default`);
  }
  const rw = table.get("recoveryWindowInDays");
  assert.equal(rw?.range, `${RECOVERY_WINDOW.min}-${RECOVERY_WINDOW.max}`);
  assert.equal(
    rw?.default,
    `\`${RECOVERY_WINDOW.productionDefault}\` on production, \`${RECOVERY_WINDOW.otherDefault}\` elsewhere`,
  );
  const length = table.get("generated.<KEY>.length");
  assert.equal(
    length?.range,
    `${minimumLength("JWT_SIGNING_KEY")}-${MAX_GENERATED_LENGTH} (SECRET_KEY ${minimumLength("SECRET_KEY")}-${MAX_GENERATED_LENGTH})`,
  );
  assert.equal(length?.default, `\`${DEFAULT_GENERATED_LENGTH}\``);
});

test("docs/CONFIG.md lists each choice key's choices and default as the parser has them", () => {
  const choices = (list: readonly (string | number)[]): string => list.map((c) => `\`${c}\``).join(", ");
  assert.equal(table.get("app.unmanagedKeys")?.range, choices(UNMANAGED_KEYS));
  assert.equal(table.get("app.unmanagedKeys")?.default, `\`${UNMANAGED_KEYS[0]}\``);
  assert.equal(table.get("app.checkFailLevel")?.range, choices(FAIL_LEVELS));
  assert.equal(table.get("generated.<KEY>.alphabet")?.range, choices(Object.keys(ALPHABETS)));
  assert.equal(table.get("generated.<KEY>.alphabet")?.default, `\`${Object.keys(ALPHABETS)[0]}\``);
  assert.equal(table.get("rollout.secretKeyPhases")?.range, choices([1, 2]));
  assert.equal(table.get("rollout.secretKeyPhases")?.default, `\`${DEFAULT_SECRET_KEY_PHASES}\``);
  assert.equal(table.get("rollout.batches")?.default, `\`${describeBatches(DEFAULT_BATCHES)}\``);
  assert.equal(table.get("app.envFile")?.default, `\`${DEFAULT_ENV_FILE}\``);
});

/** The agent checks each int flag against the same table (agent/pms_agent/options.py parse_table). */
test("each whole-number config key that sets a host agent flag has the agent table's range and default", () => {
  const ints = AGENT_OPTIONS.filter((o) => o.type === "int" && typeof o.config === "string" && RANGES[o.config]);
  assert.deepEqual(ints.map((o) => o.config).sort(), [
    "app.backupGenerations",
    "app.healthTimeoutSeconds",
    "app.stableSeconds",
    "secretKeyFallbacks",
  ]);
  for (const o of ints) {
    const config = RANGES[o.config as string];
    assert.deepEqual(
      { min: config.min, max: config.max, default: config.default },
      { min: o.min, max: o.max, default: o.default },
      `${o.config} (${o.flag})`,
    );
  }
  // CONFIG.md says so, and says where the agent's ranges live.
  assert.match(DOC, /The config's ranges are the agent's own \(`agent\/options\.json`\)/);
});

test("Pulumi.yaml's declared defaults and the ranges its descriptions give are the parsers'", () => {
  const project = load(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as {
    config: Record<string, { default?: unknown; description: string }>;
  };
  let checked = 0;
  for (const [key, decl] of Object.entries(project.config)) {
    const range = RANGES[key];
    const stated = /\((\d+)-(\d+)\)/.exec(decl.description);
    if (range === undefined) {
      assert.equal(stated, null, `${key}: Pulumi.yaml states a range the test cannot check`);
      continue;
    }
    assert.equal(decl.default, range.default, `${key}: default`);
    assert.deepEqual(stated?.slice(1).map(Number), [range.min, range.max], `${key}: range in the description`);
    checked++;
  }
  assert.ok(checked >= 2, "Pulumi.yaml declares the whole-number keys");
});
