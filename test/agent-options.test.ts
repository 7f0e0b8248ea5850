/**
 * One options table (issue 18, item 3): agent/options.json is the contract between the program and
 * the host agent. These tests fail when the three sides disagree with it:
 *   - the agent (agent/pms_agent/options.py, run by python3): one attribute per option, each at the
 *     table's default when absent; required options, ranges, values, switches and values enforced,
 *     with messages that name the flag and the range;
 *   - the program: the config parsers' ranges and defaults, and the argv every rollout command
 *     carries (every program option sent for some config, each value the one the config asks for);
 *   - the docs: docs/AGENT-OPTIONS.md is what the table generates.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  AGENT_OPTIONS,
  agentArgv,
  checkAgentOptions,
  effectiveAgentValues,
  parseAgentArgv,
  type AgentOption,
  type AgentValue,
} from "../components/agent-options";
import { rolloutCommand } from "../components/host-rollout";
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
// The agent: agent/pms_agent/options.py, run by python3 as a host runs it

/** What the agent's own parser makes of each argv: accepted (and the options it ends with) or refused (and why). */
type AgentParse = { status: "accepted"; options: Record<string, unknown> } | { status: "refused"; message: string };

function agentParses(cases: readonly (readonly string[])[]): AgentParse[] {
  const program = [
    "import dataclasses, json, sys",
    "sys.path.insert(0, sys.argv[1])",
    "from pms_agent import options",
    "from pms_agent.report import UsageError",
    "out = []",
    "for argv in json.load(sys.stdin):",
    "    try:",
    "        out.append({'status': 'accepted', 'options': dataclasses.asdict(options.parse_args(argv))})",
    "    except UsageError as e:",
    "        out.append({'status': 'refused', 'message': str(e)})",
    "json.dump(out, sys.stdout)",
  ].join("\n");
  const r = spawnSync("python3", ["-I", "-c", program, path.join(__dirname, "..", "agent")], {
    input: JSON.stringify(cases),
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as AgentParse[];
}

const SAMPLE: Record<string, string> = {
  "--host": "web1",
  "--env-file": "/srv/app/.env.production",
  "--service": "web",
};
const REQUIRED = AGENT_OPTIONS.filter((x) => x.required).flatMap((o) => {
  assert.ok(SAMPLE[o.flag], `a sample value for the required ${o.flag}`);
  return [o.flag, SAMPLE[o.flag]];
});

/** The agent's attribute for a flag (--health-url: health_urls, the repeatable ones plural). */
const attributeOf = (flag: string): string =>
  ({ "--service": "services", "--health-url": "health_urls" })[flag] ?? flag.slice(2).replace(/-/g, "_");

test("the agent ends with one attribute per table row and nothing else, each at the table's default when absent", () => {
  const [parsed] = agentParses([REQUIRED]);
  assert.equal(parsed.status, "accepted", JSON.stringify(parsed));
  const options = (parsed as { options: Record<string, unknown> }).options;
  assert.deepEqual(Object.keys(options).sort(), AGENT_OPTIONS.map((o) => attributeOf(o.flag)).sort());
  const wrong: string[] = [];
  for (const o of AGENT_OPTIONS) {
    const got = options[attributeOf(o.flag)];
    const sent = REQUIRED.indexOf(o.flag) >= 0 ? REQUIRED[REQUIRED.indexOf(o.flag) + 1] : undefined;
    // Absent: the table's default ("" for none); the agent fills --app-dir from the env file.
    let want: unknown = o.default === null ? "" : o.default;
    if (sent !== undefined) want = o.type === "list" ? [sent] : sent;
    if (o.flag === "--app-dir") want = path.dirname(SAMPLE["--env-file"]);
    // One value A,B the agent splits into its two role names: none when absent.
    if (o.flag === "--db-roles") want = [];
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      wrong.push(`${o.flag}: the agent has ${JSON.stringify(got)}, the table says ${JSON.stringify(want)}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test("the agent enforces what the table says: required options, each int's min and max, each enum's values, each switch", () => {
  const cases: [string, string[], "accepted" | "refused", RegExp?][] = [
    ["the required options alone", REQUIRED, "accepted"],
    ["an unknown option", [...REQUIRED, "--bogus", "x"], "refused", /unknown argument --bogus/],
  ];
  for (const o of AGENT_OPTIONS.filter((x) => x.required)) {
    const without = REQUIRED.filter((_, i) => REQUIRED[i - (i % 2)] !== o.flag);
    cases.push([`without ${o.flag}`, without, "refused", new RegExp(o.flag)]);
  }
  for (const o of ints) {
    const min = o.min ?? 0;
    const max = o.max ?? 0;
    const says = new RegExp(`^${o.flag} must be ${min}\\.\\.${max}$`);
    cases.push([`${o.flag} ${min}`, [...REQUIRED, o.flag, String(min)], "accepted"]);
    cases.push([`${o.flag} ${max}`, [...REQUIRED, o.flag, String(max)], "accepted"]);
    cases.push([`${o.flag} ${max + 1}`, [...REQUIRED, o.flag, String(max + 1)], "refused", says]);
    cases.push([`${o.flag} ${min - 1}`, [...REQUIRED, o.flag, String(min - 1)], "refused", says]);
    cases.push([`${o.flag} x`, [...REQUIRED, o.flag, "x"], "refused", says]);
  }
  for (const o of AGENT_OPTIONS.filter((x) => x.type === "enum")) {
    for (const v of o.values ?? []) cases.push([`${o.flag} ${v}`, [...REQUIRED, o.flag, v], "accepted"]);
    cases.push([`${o.flag} bogus`, [...REQUIRED, o.flag, "bogus"], "refused", new RegExp(`^${o.flag} must be`)]);
  }
  for (const o of AGENT_OPTIONS.filter((x) => x.type === "bool")) {
    cases.push([`${o.flag} (a switch)`, [...REQUIRED, o.flag], "accepted"]);
  }
  for (const o of AGENT_OPTIONS.filter((x) => x.type !== "bool")) {
    cases.push([
      `${o.flag} without its value`,
      [...REQUIRED, o.flag],
      "refused",
      new RegExp(`^${o.flag} needs a value`),
    ]);
  }
  const got = agentParses(cases.map((c) => c[1]));
  const wrong = cases
    .map(([what, , want, says], i) => {
      const g = got[i];
      if (g.status !== want) return `${what}: the table says ${want}, the agent ${g.status}`;
      if (g.status === "refused" && says && !says.test(g.message)) return `${what}: the agent says "${g.message}"`;
      return "";
    })
    .filter(Boolean);
  assert.deepEqual(wrong, []);
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
      healthTimeoutSeconds: 40,
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
    "--health-timeout": 40,
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
