/**
 * One options table (issue 18, item 3): agent/options.json is the contract between the program and
 * the host agent. These tests fail when the three sides disagree with it:
 *   - the agent (components/scripts/rollout.sh): the flags parse_args accepts, switch vs value vs
 *     repeatable, each option's default, range, values and whether it is required (read from the
 *     script's text and by running its parse_args), its header, and the worker's variable list;
 *   - the program: the config parsers' ranges and defaults, and the argv every rollout command
 *     carries (every program option sent for some config, each value the one the config asks for);
 *   - the docs: docs/AGENT-OPTIONS.md is what the table generates.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import {
  AGENT_OPTIONS,
  agentArgv,
  checkAgentOptions,
  effectiveAgentValues,
  parseAgentArgv,
  type AgentOption,
  type AgentValue,
} from "../components/agent-options";
import { ROLLOUT_SCRIPT, rolloutCommand } from "../components/host-rollout";
import { AGENT_OPTIONS_DOC, renderAgentOptionsDoc } from "./agent-options-doc";
import { baseConfig, defined, MINIMAL_APP, MINIMAL_HOST } from "./fixtures";
import { assertProblem, stackProblems } from "./config-check";
import { runProgram, TYPES } from "./harness";

const byFlag = new Map(AGENT_OPTIONS.map((o) => [o.flag, o]));
const ints = AGENT_OPTIONS.filter((o) => o.type === "int");
const programFlags = AGENT_OPTIONS.filter((o) => o.sentBy === "program").map((o) => o.flag);

// ---------------------------------------------------------------------------------------------
// The table itself

test("the options table is well formed: known fields, each flag once, ranges and values on their types, defaults inside them", () => {
  assert.ok(AGENT_OPTIONS.length >= 25, `${AGENT_OPTIONS.length} options`);
  const good = AGENT_OPTIONS.find((o) => o.flag === "--backups") as AgentOption;
  const bad: [string, unknown[], RegExp][] = [
    ["not an array", [], /must be a JSON array/],
    ["unknown field", [{ ...good, repeat: true }], /--backups: unknown field "repeat"/],
    ["listed twice", [good, good], /--backups: listed twice/],
    ["min on a string", [{ ...good, type: "string", default: null }], /--backups: min and max are for int only/],
    ["int without max", [{ ...good, max: undefined }], /--backups: an int needs integer min <= max/],
    ["default out of range", [{ ...good, default: 21 }], /--backups: an int's default is null or within min\.\.max/],
    ["values on an int", [{ ...good, values: ["a"] }], /--backups: values is for enum only/],
    [
      "enum default",
      [{ ...good, type: "enum", min: undefined, max: undefined, values: ["a"], default: "b" }],
      /one of its values/,
    ],
    ["program flag without config", [{ ...good, config: null }], /names the config key it comes from/],
    ["doc with a pipe", [{ ...good, doc: "a | b" }], /doc must be one line without \|/],
    [
      "bool default",
      [{ ...good, type: "bool", min: undefined, max: undefined, default: true }],
      /a bool's default is false/,
    ],
  ];
  for (const [what, table, message] of bad) {
    const input =
      what === "not an array" ? { options: table } : table.map((e) => JSON.parse(JSON.stringify(e)) as unknown);
    assert.throws(() => checkAgentOptions(input, "options.json"), message, what);
  }
  assert.doesNotThrow(() => checkAgentOptions(JSON.parse(JSON.stringify(AGENT_OPTIONS)) as unknown));
});

test("agentArgv and parseAgentArgv: table order, switches, repeats; unknown flags, bad values and missing required options throw", () => {
  const argv = agentArgv({
    "--redact": ["A", "B"],
    "--stable-seconds": 9,
    "--service": ["web"],
    "--env-file": "/etc/x/.env",
    "--host": "h",
    "--emergency": true,
    "--production": false,
  });
  assert.deepEqual(argv, [
    "--host",
    "h",
    "--env-file",
    "/etc/x/.env",
    "--service",
    "web",
    "--emergency",
    "--stable-seconds",
    "9",
    "--redact",
    "A",
    "--redact",
    "B",
  ]);
  assert.deepEqual(parseAgentArgv(argv), {
    "--host": "h",
    "--env-file": "/etc/x/.env",
    "--service": ["web"],
    "--emergency": true,
    "--stable-seconds": 9,
    "--redact": ["A", "B"],
  });
  const base = { "--host": "h", "--env-file": "/e", "--service": ["s"] };
  assert.throws(() => agentArgv({ ...base, "--bogus": "x" }), /--bogus is not an option of the host agent/);
  assert.throws(
    () => agentArgv({ ...base, "--stable-seconds": 0 }),
    /--stable-seconds must be a whole number from 1 to 300/,
  );
  assert.throws(() => agentArgv({ ...base, "--unmanaged-keys": "maybe" }), /must be one of refuse, keep, drop/);
  assert.throws(() => agentArgv({ ...base, "--service": [] }), /the host agent needs --service/);
  assert.throws(() => agentArgv({ ...base, "--check": "" }), /--check must be a non-empty string/);
  assert.throws(() => parseAgentArgv(["--backups", "21"]), /--backups must be a whole number from 1 to 20/);
  assert.throws(() => parseAgentArgv(["--host", "a", "--host", "b"]), /--host is given twice/);
  assert.throws(() => parseAgentArgv(["--host"]), /--host needs a value/);
  const effective = effectiveAgentValues(["--host", "h"]);
  assert.equal(effective["--backups"], 3);
  assert.equal(effective["--production"], false);
});

// ---------------------------------------------------------------------------------------------
// The agent: components/scripts/rollout.sh

interface ScriptOption {
  kind: "switch" | "value" | "repeat";
  /** The global it sets; "" for an option parsed and ignored. */
  variable: string;
}

const parseArgsBody = /^parse_args\(\) \{\n([\s\S]*?)^\}$/m.exec(ROLLOUT_SCRIPT)?.[1] ?? "";
const [switchPart, valuePart] = parseArgsBody.split('[ $# -ge 2 ] || usage_error "$1 needs a value"');

/** The options rollout.sh's parse_args accepts, read from its two case statements. */
function scriptOptions(): Map<string, ScriptOption> {
  assert.ok(valuePart !== undefined, "parse_args no longer has its switch and value parts");
  const out = new Map<string, ScriptOption>();
  for (const [part, isSwitch] of [
    [switchPart, true],
    [valuePart, false],
  ] as const) {
    for (const m of part.matchAll(/^\s+(--[a-z][a-z0-9-]*)\)\s*(.*)$/gm)) {
      const action = m[2];
      const name = (/read -r -a ([A-Z_][A-Z0-9_]*)/.exec(action) ?? /\b([A-Z_][A-Z0-9_]*)\+?=/.exec(action))?.[1] ?? "";
      const kind = isSwitch ? "switch" : new RegExp(`\\b${name}\\+=\\(`).test(action) ? "repeat" : "value";
      assert.ok(!out.has(m[1]), `${m[1]} is parsed twice`);
      out.set(m[1], { kind, variable: name });
    }
  }
  return out;
}

/** A global's initial value in rollout.sh (`VAR=...` before any function). */
function scriptDefault(variable: string): string | undefined {
  const globals = ROLLOUT_SCRIPT.slice(0, ROLLOUT_SCRIPT.indexOf("\nparse_args() {"));
  return new RegExp(`^${variable}=(.*)$`, "m").exec(globals)?.[1];
}

/** The table's default as rollout.sh writes a global's initial value. */
function asScriptDefault(o: AgentOption): string {
  if (o.type === "bool") return "0";
  if (o.type === "list") return "()";
  return o.default === null ? '""' : String(o.default);
}

test("rollout.sh parses exactly the table's options: switches are bools, repeatable ones lists, each default the table's", () => {
  const script = scriptOptions();
  const ignored = [...script].filter(([, o]) => o.variable === "").map(([flag]) => flag);
  assert.deepEqual(ignored, [], "options parse_args accepts and ignores");
  assert.deepEqual(
    [...script.keys()].sort(),
    AGENT_OPTIONS.map((o) => o.flag).sort(),
    "flags of parse_args vs the table",
  );
  const wrong: string[] = [];
  for (const o of AGENT_OPTIONS) {
    const s = script.get(o.flag);
    if (!s) continue;
    const kind = o.type === "bool" ? "switch" : o.type === "list" ? "repeat" : "value";
    if (s.kind !== kind) wrong.push(`${o.flag}: the script parses it as a ${s.kind}, the table says ${o.type}`);
    const initial = scriptDefault(s.variable);
    // A value parsed into an array (--db-roles A,B) starts as an empty array: no default either.
    const expected = asScriptDefault(o);
    if (initial !== expected && !(expected === '""' && initial === "()" && o.type === "string")) {
      wrong.push(
        `${o.flag}: ${s.variable}=${initial ?? "(not set)"} in the script, the table's default is ${JSON.stringify(o.default)}`,
      );
    }
  }
  assert.deepEqual(wrong, []);
});

test("rollout.sh checks the table's ranges and values, with messages that say them", () => {
  const script = scriptOptions();
  const varOf = (flag: string): string => script.get(flag)?.variable ?? "";
  const ranges = new Map<string, string>();
  for (const m of parseArgsBody.matchAll(
    /is_count "\$([A-Z_]+)" (\d+) (\d+) \|\| usage_error "(--[a-z-]+) must be (\d+)\.\.(\d+)"/g,
  )) {
    assert.equal(
      m[4],
      [...script].find(([, s]) => s.variable === m[1])?.[0],
      `the message of ${m[1]}'s range names its flag`,
    );
    assert.equal(`${m[5]}..${m[6]}`, `${m[2]}..${m[3]}`, `${m[4]}: the message says the range it checks`);
    ranges.set(m[1], `${m[2]}..${m[3]}`);
  }
  const enums = new Map<string, string>();
  for (const m of parseArgsBody.matchAll(/case \$([A-Z_]+) in ([a-z]+(?: \| [a-z]+)+)\) ;;/g)) enums.set(m[1], m[2]);
  const tableRanges = new Map(ints.map((o) => [varOf(o.flag), `${o.min}..${o.max}`]));
  assert.deepEqual(Object.fromEntries(ranges), Object.fromEntries(tableRanges), "int ranges: script vs table");
  const tableEnums = new Map(
    AGENT_OPTIONS.filter((o) => o.type === "enum").map((o) => [varOf(o.flag), (o.values ?? []).join(" | ")]),
  );
  assert.deepEqual(Object.fromEntries(enums), Object.fromEntries(tableEnums), "enum values: script vs table");
});

/** Runs parse_args of rollout.sh once per argv, each in a subshell; the exit code of each. */
function parseArgsExits(cases: readonly (readonly string[])[]): number[] {
  const functions = ROLLOUT_SCRIPT.slice(0, ROLLOUT_SCRIPT.lastIndexOf('main "$@"; exit $?'));
  const q = (w: string): string => `'${w.replace(/'/g, `'\\''`)}'`;
  const body = cases.map((argv) => `( parse_args ${argv.map(q).join(" ")} ) >/dev/null 2>&1; echo "$?"`).join("\n");
  const r = spawnSync("/bin/bash", ["-c", `${functions}\nset +e\n${body}`], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split("\n").map(Number);
}

test("rollout.sh enforces what the table says: required options, each int's min and max, each enum's values", () => {
  const required: string[] = [];
  const sample: Record<string, string> = {
    "--host": "web1",
    "--env-file": "/srv/app/.env.production",
    "--service": "web",
  };
  for (const o of AGENT_OPTIONS.filter((x) => x.required)) {
    assert.ok(sample[o.flag], `a sample value for the required ${o.flag}`);
    required.push(o.flag, sample[o.flag]);
  }
  const cases: [string, string[], "accepted" | "refused"][] = [
    ["the required options alone", required, "accepted"],
    ["an unknown option", [...required, "--bogus", "x"], "refused"],
  ];
  for (const o of AGENT_OPTIONS.filter((x) => x.required)) {
    const without = required.filter((_, i) => required[i - (i % 2)] !== o.flag);
    cases.push([`without ${o.flag}`, without, "refused"]);
  }
  for (const o of ints) {
    const min = o.min ?? 0;
    const max = o.max ?? 0;
    cases.push([`${o.flag} ${min}`, [...required, o.flag, String(min)], "accepted"]);
    cases.push([`${o.flag} ${max}`, [...required, o.flag, String(max)], "accepted"]);
    cases.push([`${o.flag} ${max + 1}`, [...required, o.flag, String(max + 1)], "refused"]);
    cases.push([`${o.flag} ${min - 1}`, [...required, o.flag, String(min - 1)], "refused"]);
    cases.push([`${o.flag} x`, [...required, o.flag, "x"], "refused"]);
  }
  for (const o of AGENT_OPTIONS.filter((x) => x.type === "enum")) {
    for (const v of o.values ?? []) cases.push([`${o.flag} ${v}`, [...required, o.flag, v], "accepted"]);
    cases.push([`${o.flag} bogus`, [...required, o.flag, "bogus"], "refused"]);
  }
  for (const o of AGENT_OPTIONS.filter((x) => x.type === "bool")) {
    cases.push([`${o.flag} (a switch)`, [...required, o.flag], "accepted"]);
  }
  const exits = parseArgsExits(cases.map((c) => c[1]));
  const wrong = cases
    .map(([what, , want], i) => ({
      what,
      want,
      got: exits[i] === 0 ? "accepted" : exits[i] === 2 ? "refused" : `exit ${exits[i]}`,
    }))
    .filter((c) => c.got !== c.want)
    .map((c) => `${c.what}: the table says ${c.want}, the script ${c.got}`);
  assert.deepEqual(wrong, []);
});

test("rollout.sh's header names exactly the table's options, with the table's ranges and defaults", () => {
  const header = ROLLOUT_SCRIPT.slice(0, ROLLOUT_SCRIPT.search(/^[^#]/m));
  const named = new Set(header.match(/--[a-z][a-z0-9-]*/g) ?? []);
  assert.deepEqual([...named].sort(), AGENT_OPTIONS.map((o) => o.flag).sort());
  const said = [...header.matchAll(/(--[a-z-]+) N \((\d+)\.\.(\d+), default (\d+)/g)].map((m) => m.slice(1).join(" "));
  assert.ok(said.length >= 2, "the header gives ranges");
  for (const s of said) {
    const [flag, min, max, def] = s.split(" ");
    const o = byFlag.get(flag);
    assert.equal(`${o?.min}..${o?.max} default ${String(o?.default)}`, `${min}..${max} default ${def}`, flag);
  }
});

test("the worker gets every option the front end parsed (it runs from declare -p, not from the arguments)", () => {
  const body = /^write_worker\(\) \{\n([\s\S]*?)^\}$/m.exec(ROLLOUT_SCRIPT)?.[1] ?? "";
  const passed = new Set([...body.matchAll(/declare -p ((?:[^\n\\]|\\\n)*)/g)].flatMap((m) => m[1].split(/[\s\\]+/)));
  // --verify-only runs in the front end and never starts a worker.
  const frontEndOnly = new Set(["VERIFY_ONLY"]);
  const missing = [...scriptOptions()]
    .map(([flag, s]) => [flag, s.variable])
    .filter(([, v]) => !passed.has(v) && !frontEndOnly.has(v));
  assert.deepEqual(missing, []);
});

// ---------------------------------------------------------------------------------------------
// The program: config ranges and the argv it builds

/** `config` with `key` (a dotted path such as app.stableSeconds) set to `value`. */
function withKey(config: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const out = structuredClone(config);
  const parts = key.split(".");
  let at = out;
  for (const p of parts.slice(0, -1)) {
    const next: Record<string, unknown> = { ...((at[p] as Record<string, unknown> | undefined) ?? {}) };
    at[p] = next;
    at = next;
  }
  at[parts[parts.length - 1]] = value;
  return out;
}

test("the config takes each int option's range from the table: min and max accepted, one past either refused naming the key", () => {
  // One service, no health URL or check command: the largest values fit the rollout's time bound.
  const small = baseConfig("dev", { app: { dir: "/srv/pms-backend", services: ["pms-backend"] } });
  for (const o of ints) {
    const key = o.config ?? "";
    const problems = (v: unknown) => stackProblems(withKey(small, key, v), "dev");
    assert.deepEqual(problems(o.min), [], `${key} = ${o.min}`);
    assert.deepEqual(problems(o.max), [], `${key} = ${o.max}`);
    for (const bad of [(o.min ?? 0) - 1, (o.max ?? 0) + 1]) {
      assertProblem(
        problems(bad),
        key,
        new RegExp(`is not a whole number from ${o.min} to ${o.max}.*default ${String(o.default)}`),
      );
    }
  }
  for (const o of AGENT_OPTIONS.filter((x) => x.type === "enum")) {
    const key = o.config ?? "";
    for (const v of o.values ?? [])
      assert.deepEqual(stackProblems(withKey(baseConfig("dev"), key, v), "dev"), [], `${key} = ${v}`);
    assert.equal(stackProblems(withKey(baseConfig("dev"), key, "bogus"), "dev").length, 1, `${key} = bogus`);
  }
});

/** Every rollout and accept command of a program run, as the agent's argv (through a real shell). */
async function commandsOf(stack: "dev" | "prod", config: Record<string, unknown>): Promise<Map<string, string[]>> {
  const r = await runProgram({ stack, config: defined(config) });
  const out = new Map<string, string[]>();
  for (const c of r.ofType(TYPES.command)) {
    const create = String(c.inputs.create).replace(/^(sudo -n )?\/bin\/bash -s -- /, "printf '%s\\0' ");
    const argv = execFileSync("/bin/sh", ["-c", create], { encoding: "utf8" }).split("\0").slice(0, -1);
    out.set(c.name, argv);
  }
  return out;
}

const PROBE = {
  url: "https://127.0.0.1/accounts/login/",
  username: "rollout-probe",
  passwordFile: "/etc/pms-secrets/login-probe",
  checkUrl: "https://127.0.0.1/me/",
};

/** Every app option set, not at its default; DB_PASSWORD generated, alternating roles, an admin host. */
function everythingProd(): Record<string, unknown> {
  const base = baseConfig("prod");
  const env: Record<string, unknown> = { ...(base.env as Record<string, unknown>), DB_HOST: "10.0.0.11" };
  delete env.DB_USER;
  const secrets = { ...(base.secrets as Record<string, unknown>) };
  delete secrets.DB_PASSWORD;
  return baseConfig("prod", {
    app: {
      dir: "/srv/pms-backend",
      envFileGroup: "pms",
      checkCommand: "/srv/pms-backend/venv/bin/python manage.py check --deploy",
      checkFailLevel: "WARNING",
      healthUrls: ["https://127.0.0.1/health/", "https://127.0.0.1/api/status/"],
      healthHost: "api.pms.internal",
      healthCaFile: "/etc/ssl/pms-ca.pem",
      socketUnit: "pms-backend.socket",
      loginProbe: PROBE,
      unmanagedKeys: "keep",
      backupGenerations: 7,
      stableSeconds: 11,
      healthTimeoutSeconds: 45,
    },
    env,
    secrets,
    generated: {
      ...(base.generated as Record<string, unknown>),
      DB_PASSWORD: { roles: ["pms_app_a", "pms_app_b"], adminHost: "web1" },
    },
    secretKeyFallbacks: 2,
  });
}

test("every program option of the table is sent for some config, no operator option ever is, and each command is what the agent accepts", async () => {
  const routine = await commandsOf("prod", everythingProd());
  const emergency = await commandsOf(
    "dev",
    baseConfig("dev", {
      app: { dir: "/srv/pms-backend", healthUrl: "https://127.0.0.1/health/", healthInsecure: true },
      rotate: { SECRET_KEY: "emergency-2026-12-05" },
    }),
  );
  const sent = new Set<string>();
  for (const [name, argv] of [...routine, ...emergency]) {
    const given = parseAgentArgv(argv); // throws on anything the agent would refuse
    for (const o of AGENT_OPTIONS.filter((x) => x.required)) assert.ok(o.flag in given, `${name}: ${o.flag} missing`);
    for (const flag of Object.keys(given)) sent.add(flag);
  }
  assert.deepEqual(
    programFlags.filter((f) => !sent.has(f)),
    [],
    "program options no config sends",
  );
  assert.deepEqual(
    [...sent].filter((f) => byFlag.get(f)?.sentBy !== "program"),
    [],
    "operator options in a command",
  );
});

test("what each command carries is what the config asks for: the agent's effective values (sent or its default) match the settings", async () => {
  const routine = await commandsOf("prod", everythingProd());
  const expected: Record<string, AgentValue | null> = {
    "--production": true,
    "--group": "pms",
    "--check": "/srv/pms-backend/venv/bin/python manage.py check --deploy --fail-level WARNING",
    "--health-url": ["https://127.0.0.1/health/", "https://127.0.0.1/api/status/"],
    "--health-host": "api.pms.internal",
    "--health-ca": "/etc/ssl/pms-ca.pem",
    "--health-insecure": false,
    "--socket": "pms-backend.socket",
    "--login-url": PROBE.url,
    "--login-user": PROBE.username,
    "--login-password-file": PROBE.passwordFile,
    "--login-check-url": PROBE.checkUrl,
    "--unmanaged-keys": "keep",
    "--backups": 7,
    "--secret-key-fallbacks": 2,
    "--emergency": false,
    "--rotate-db-password": true,
    "--db-roles": "pms_app_a,pms_app_b",
    "--stable-seconds": 11,
    "--health-timeout": 45,
  };
  const perCommand: Record<string, Record<string, AgentValue | null>> = {
    "web1-accept": { "--host": "web1", "--secret-key-accept": true, "--db-follow": null },
    "web1-rollout": { "--host": "web1", "--secret-key-accept": false, "--db-follow": null },
    "web2-accept": { "--host": "web2", "--secret-key-accept": true, "--db-follow": "web1" },
    "web2-rollout": { "--host": "web2", "--secret-key-accept": false, "--db-follow": "web1" },
  };
  assert.deepEqual([...routine.keys()].sort(), Object.keys(perCommand).sort());
  for (const [name, argv] of routine) {
    const effective = effectiveAgentValues(argv);
    const want = { ...expected, ...perCommand[name] };
    for (const [flag, value] of Object.entries(want)) assert.deepEqual(effective[flag], value, `${name} ${flag}`);
  }

  // Nothing set: the agent runs on the table's defaults, which are the config's defaults.
  const plain = await commandsOf("dev", baseConfig("dev", { hosts: [{ name: "web1", address: "10.0.0.11" }] }));
  const effective = effectiveAgentValues(plain.get("web1-rollout") ?? []);
  for (const flag of [
    "--unmanaged-keys",
    "--backups",
    "--secret-key-fallbacks",
    "--stable-seconds",
    "--health-timeout",
  ]) {
    assert.deepEqual(effective[flag], byFlag.get(flag)?.default, flag);
  }
});

test("rolloutCommand refuses mode arguments the agent does not have or that repeat what the app sets", () => {
  const [host, app] = [MINIMAL_HOST, MINIMAL_APP];
  assert.throws(
    () => rolloutCommand(host, app, [], ["--check-fail-level", "WARNING"]),
    /--check-fail-level is not an option/,
  );
  assert.throws(() => rolloutCommand(host, app, [], ["--stable-seconds", "9"]), /may not set --stable-seconds/);
  assert.match(rolloutCommand(host, app, [], ["--emergency"]), / --service a --emergency --stable-seconds 5 /);
});

// ---------------------------------------------------------------------------------------------
// The docs

test("docs/AGENT-OPTIONS.md is what the table generates (npm run docs:agent-options)", () => {
  const checkedIn = fs.readFileSync(AGENT_OPTIONS_DOC, "utf8");
  assert.equal(checkedIn, renderAgentOptionsDoc(), "run `npm run docs:agent-options` and commit docs/AGENT-OPTIONS.md");
  for (const o of AGENT_OPTIONS) assert.ok(checkedIn.includes(`| \`${o.flag}\` |`), o.flag);
});
