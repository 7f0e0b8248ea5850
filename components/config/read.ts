/** Reading raw stack config the way Pulumi hands it to a program: full key to string. */
import * as path from "node:path";
import type { Problems } from "./problems";

export const PROJECT = "pms-secrets";

/** Raw config: full key ("pms-secrets:hosts") to string. */
export type RawConfig = Readonly<Record<string, string | undefined>>;

export type ConfigObject = Record<string, unknown>;

export function isObject(v: unknown): v is ConfigObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A config scalar as text; structures as JSON (so a wrong shape shows in the message, not "[object Object]"). */
export function scalar(v: unknown): string {
  return typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? String(v) : JSON.stringify(v);
}

/** The text of a project key (`key` without the `pms-secrets:` prefix). */
export function readText(raw: RawConfig, key: string): string | undefined {
  return raw[`${PROJECT}:${key}`];
}

/** A structured value: config set with --path arrives as JSON; a plain scalar stays a string. */
export function readValue(raw: RawConfig, key: string): unknown {
  const text = readText(raw, key);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

export interface NumberRange {
  min: number;
  max: number;
  default: number;
  /** What the number is, for the fix text "set <unit> from <min> to <max>": "the seconds per ...". */
  unit: string;
}

/** `value` as a whole number within `range`; absent gives the default, anything else a problem. */
export function wholeNumber(problems: Problems, key: string, value: unknown, range: NumberRange): number {
  if (value === undefined) return range.default;
  const n = typeof value === "string" && value.trim() === "" ? NaN : Number(value);
  if (Number.isInteger(n) && n >= range.min && n <= range.max) return n;
  problems.add(
    key,
    `${JSON.stringify(value)} is not a whole number from ${range.min} to ${range.max}`,
    `set ${range.unit} from ${range.min} to ${range.max} (default ${range.default})`,
  );
  return range.default;
}

/** `value` as a boolean: YAML true/false or the strings "true"/"false"; absent gives `fallback`. */
export function flag(problems: Problems, key: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (value === true || value === "true") return true;
  if (value === false || value === "false") return false;
  problems.add(key, `${JSON.stringify(value)} is not true or false`, "set it to true or false");
  return fallback;
}

/** Problems for every key of `obj` that is not in `known`, naming the known ones. */
export function unknownKeys(problems: Problems, at: string, obj: ConfigObject, known: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) problems.add(`${at}.${k}`, `is not a setting of ${at}`, `use ${known.join(", ")}`);
  }
}

/** `v` as a normalized absolute path without a trailing slash, or undefined after a problem. */
export function absolutePath(problems: Problems, key: string, v: unknown, example: string): string | undefined {
  if (typeof v !== "string" || v === "") {
    problems.add(key, "is missing", `set an absolute path, e.g. ${example}`);
    return undefined;
  }
  if (
    !path.posix.isAbsolute(v) ||
    path.posix.normalize(v).replace(/\/+$/, "") !== v.replace(/\/+$/, "") ||
    /[\s'"\\]/.test(v)
  ) {
    problems.add(
      key,
      `${JSON.stringify(v)} is not a normalized absolute path`,
      `use an absolute path without .., //, quotes or spaces, e.g. ${example}`,
    );
    return undefined;
  }
  return v.replace(/\/+$/, "") || "/";
}
