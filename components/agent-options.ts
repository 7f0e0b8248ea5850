/**
 * The host agent's options, from the one table both sides use: agent/options.json (its format is
 * in agent/README.md). The program builds every rollout command's argv from it (`agentArgv`), the
 * config parsers take their ranges and defaults from it (`agentRange`), docs/AGENT-OPTIONS.md is
 * generated from it, and test/agent-options.test.ts fails when the agent, the program or the docs
 * disagree with it.
 *
 * The table is checked when this module loads: a malformed table stops the program with every
 * problem listed, before any resource.
 */
import * as fs from "node:fs";
import * as path from "node:path";

export const AGENT_OPTIONS_PATH = path.join(__dirname, "..", "agent", "options.json");

export const AGENT_OPTION_TYPES = ["int", "string", "bool", "enum", "list"] as const;
export type AgentOptionType = (typeof AGENT_OPTION_TYPES)[number];

/** One value an agent flag can carry: a bool is a flag without a value; a list repeats its flag. */
export type AgentValue = boolean | number | string | readonly string[];

export interface AgentOption {
  /** `--name`, as on the command line. */
  flag: string;
  type: AgentOptionType;
  /** int only: the smallest value the agent accepts. */
  min?: number;
  /** int only: the largest value the agent accepts. */
  max?: number;
  /** enum only: the values the agent accepts. */
  values?: readonly string[];
  /** What the agent uses when the flag is absent: false for a bool, [] for a list, null for none. */
  default: AgentValue | null;
  /** The agent refuses to run without it (a list: without at least one). */
  required: boolean;
  /** `program`: the rollout command carries it when the config asks; `operator`: typed by hand only. */
  sentBy: "program" | "operator";
  /** The stack config key it comes from (null for operator flags). */
  config: string | null;
  /** One line for the docs. */
  doc: string;
}

const FIELDS = ["flag", "type", "min", "max", "values", "default", "required", "sentBy", "config", "doc"];

function isStringList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === "string");
}

/** The problems of one table entry (empty when it is well formed). */
function entryProblems(entry: Record<string, unknown>): string[] {
  const out: string[] = [];
  const type = entry.type as AgentOptionType;
  for (const k of Object.keys(entry)) if (!FIELDS.includes(k)) out.push(`unknown field "${k}"`);
  if (typeof entry.flag !== "string" || !/^--[a-z][a-z0-9-]*$/.test(entry.flag)) out.push("flag must be --lower-case");
  if (!(AGENT_OPTION_TYPES as readonly unknown[]).includes(entry.type)) {
    out.push(`type must be one of ${AGENT_OPTION_TYPES.join(", ")}`);
  }
  if (typeof entry.required !== "boolean") out.push("required must be true or false");
  if (entry.sentBy !== "program" && entry.sentBy !== "operator") out.push('sentBy must be "program" or "operator"');
  if (entry.config !== null && (typeof entry.config !== "string" || entry.config === "")) {
    out.push("config must be a config key or null");
  }
  if (entry.sentBy === "program" && entry.config === null)
    out.push("a program flag names the config key it comes from");
  if (typeof entry.doc !== "string" || entry.doc.trim() === "" || /[\n|]/.test(entry.doc)) {
    out.push("doc must be one line without |");
  }
  const hasRange = "min" in entry || "max" in entry;
  if (type === "int") {
    if (!Number.isInteger(entry.min) || !Number.isInteger(entry.max) || Number(entry.min) > Number(entry.max)) {
      out.push("an int needs integer min <= max");
    }
  } else if (hasRange) out.push("min and max are for int only");
  if (type === "enum") {
    if (!isStringList(entry.values) || entry.values.length === 0) out.push("an enum needs a non-empty values list");
  } else if ("values" in entry) out.push("values is for enum only");
  if (!("default" in entry)) out.push("default is missing (null for none)");
  const d = entry.default;
  if (type === "bool" && d !== false) out.push("a bool's default is false");
  if (type === "list" && !(isStringList(d) && d.length === 0)) out.push("a list's default is []");
  if (
    type === "int" &&
    d !== null &&
    !(Number.isInteger(d) && Number(d) >= Number(entry.min) && Number(d) <= Number(entry.max))
  ) {
    out.push("an int's default is null or within min..max");
  }
  if (type === "enum" && d !== null && !(isStringList(entry.values) && entry.values.includes(d as string))) {
    out.push("an enum's default is null or one of its values");
  }
  if (type === "string" && d !== null && typeof d !== "string") out.push("a string's default is null or a string");
  if (entry.required === true && type === "bool") out.push("a bool cannot be required");
  return out;
}

/** Checks a parsed options table; throws listing every problem, each naming its entry. */
export function checkAgentOptions(table: unknown, source = AGENT_OPTIONS_PATH): AgentOption[] {
  if (!Array.isArray(table)) throw new Error(`${source}: must be a JSON array of options`);
  const problems: string[] = [];
  const seen = new Set<string>();
  table.forEach((entry: unknown, i) => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      problems.push(`[${i}]: must be an object`);
      return;
    }
    const e = entry as Record<string, unknown>;
    const name = typeof e.flag === "string" ? e.flag : `[${i}]`;
    for (const p of entryProblems(e)) problems.push(`${name}: ${p}`);
    if (typeof e.flag === "string") {
      if (seen.has(e.flag)) problems.push(`${name}: listed twice`);
      seen.add(e.flag);
    }
  });
  if (problems.length > 0) {
    throw new Error(`${source} has ${problems.length} problem(s):\n  - ${problems.join("\n  - ")}`);
  }
  return table as AgentOption[];
}

/** The table, in argv order. */
export const AGENT_OPTIONS: readonly AgentOption[] = checkAgentOptions(
  JSON.parse(fs.readFileSync(AGENT_OPTIONS_PATH, "utf8")) as unknown,
);

const BY_FLAG = new Map(AGENT_OPTIONS.map((o) => [o.flag, o]));

/** The option of `flag`; throws for a flag the agent does not have. */
export function agentOption(flag: string): AgentOption {
  const o = BY_FLAG.get(flag);
  if (!o) throw new Error(`${flag} is not an option of the host agent (${AGENT_OPTIONS_PATH})`);
  return o;
}

/** Values by flag; an undefined value is not sent. */
export type AgentValues = Readonly<Record<string, AgentValue | undefined>>;

/** Whether `agentArgv` sends a flag with this value (undefined, false and [] are not sent). */
export function isSent(value: AgentValue | undefined): value is AgentValue {
  return !(value === undefined || value === false || (Array.isArray(value) && value.length === 0));
}

/** Why `value` is not a valid value of `o` (undefined when it is). */
function valueProblem(o: AgentOption, value: AgentValue): string | undefined {
  switch (o.type) {
    case "bool":
      return typeof value === "boolean" ? undefined : "takes true or false";
    case "int":
      return typeof value === "number" && Number.isInteger(value) && value >= (o.min ?? 0) && value <= (o.max ?? 0)
        ? undefined
        : `must be a whole number from ${o.min} to ${o.max}, not ${JSON.stringify(value)}`;
    case "enum":
      return typeof value === "string" && (o.values ?? []).includes(value)
        ? undefined
        : `must be one of ${(o.values ?? []).join(", ")}, not ${JSON.stringify(value)}`;
    case "string":
      return typeof value === "string" && value !== "" ? undefined : "must be a non-empty string";
    case "list":
      return Array.isArray(value) && value.every((v) => typeof v === "string" && v !== "")
        ? undefined
        : "must be a list of non-empty strings";
  }
}

/**
 * The agent's argv for `values`, flags in table order. A bool is sent when true, a list once per
 * item, anything else as `--flag value`; undefined, false and [] are not sent. Throws on a flag the
 * agent does not have, a value it would refuse, or a missing required flag: the program never
 * builds a command the agent rejects. `fragment`: part of an argv (a mode's flags), required flags
 * not demanded.
 */
export function agentArgv(values: AgentValues, opts: { fragment?: boolean } = {}): string[] {
  for (const flag of Object.keys(values)) agentOption(flag);
  const argv: string[] = [];
  for (const o of AGENT_OPTIONS) {
    const value = values[o.flag];
    if (!isSent(value)) {
      if (o.required && !opts.fragment) throw new Error(`the host agent needs ${o.flag}`);
      continue;
    }
    const problem = valueProblem(o, value);
    if (problem) throw new Error(`${o.flag} ${problem}`);
    if (o.type === "bool") argv.push(o.flag);
    else if (Array.isArray(value)) for (const v of value as readonly string[]) argv.push(o.flag, v);
    else argv.push(o.flag, String(value));
  }
  return argv;
}

/**
 * Reads an agent argv back into values (the inverse of `agentArgv`), checked against the table as
 * the agent checks it: unknown flags, missing or out-of-range values and a single-valued flag given
 * twice throw. Required flags are not demanded (a fragment such as a mode's flags is read too).
 */
export function parseAgentArgv(argv: readonly string[]): Record<string, AgentValue> {
  const out: Record<string, AgentValue> = {};
  for (let i = 0; i < argv.length; i++) {
    const o = agentOption(argv[i]);
    if (o.type === "bool") {
      out[o.flag] = true;
      continue;
    }
    if (i + 1 >= argv.length) throw new Error(`${o.flag} needs a value`);
    const text = argv[++i];
    if (o.type === "list") {
      out[o.flag] = [...((out[o.flag] as readonly string[] | undefined) ?? []), text];
      continue;
    }
    if (o.flag in out) throw new Error(`${o.flag} is given twice`);
    const value = o.type === "int" ? (/^\d+$/.test(text) ? Number(text) : NaN) : text;
    const problem = valueProblem(o, value);
    if (problem) throw new Error(`${o.flag} ${problem}`);
    out[o.flag] = value;
  }
  return out;
}

/** What the agent runs with: every flag's value from `argv`, or its table default. */
export function effectiveAgentValues(argv: readonly string[]): Record<string, AgentValue | null> {
  const given = parseAgentArgv(argv);
  return Object.fromEntries(AGENT_OPTIONS.map((o) => [o.flag, given[o.flag] ?? o.default]));
}

/** An int option's range and default, for the config parser of the key that sets it. */
export function agentRange(flag: string): { min: number; max: number; default: number } {
  const o = agentOption(flag);
  if (o.type !== "int" || o.min === undefined || o.max === undefined || typeof o.default !== "number") {
    throw new Error(`${flag} is not an int option with a default`);
  }
  return { min: o.min, max: o.max, default: o.default };
}

/** `value`, or undefined when it is the agent's default: a command line that carries only what differs. */
export function unlessDefault<T extends AgentValue>(flag: string, value: T): T | undefined {
  return JSON.stringify(agentOption(flag).default) === JSON.stringify(value) ? undefined : value;
}
