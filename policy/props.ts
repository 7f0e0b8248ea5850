/**
 * Reading resource properties the way the policy SDK hands them over.
 *
 * What the SDK passes (checked in @pulumi/policy 1.21 `server.js`/`deserialize.js`):
 * - Secret values arrive as PLAIN values: the SDK unwraps the secret envelope
 *   before calling a validation, so a policy sees e.g. `RandomPassword.result` in clear text.
 *   Policies here must therefore never echo a value in a violation message.
 * - Values the engine does not know yet (during `pulumi preview`: the result of a RandomPassword
 *   that will be created or replaced, anything computed from it such as the env file in `stdin`)
 *   are wrapped by `unknownCheckingProxy`: reading one throws `UnknownValueError`, which the SDK
 *   turns into an advisory "can't run policy ... during preview" for the WHOLE policy.
 *
 * `readProp` reads one property and turns that throw into the `UNKNOWN` marker so a policy can
 * skip just the value it cannot judge yet and keep checking the rest. The same inputs are
 * validated again, fully known, right before the resource is created or updated during
 * `pulumi up`, so skipping an unknown value in preview does not skip the check.
 */
import * as policySdk from "@pulumi/policy";

export const UNKNOWN: unique symbol = Symbol("unknown during preview");
export type Unknown = typeof UNKNOWN;

type ErrorClass = new (...args: never[]) => Error;

/** `UnknownValueError` is exported by @pulumi/policy >= 1.21 at runtime but not in its typings. */
const unknownValueError: ErrorClass | undefined = (policySdk as unknown as { UnknownValueError?: ErrorClass })
  .UnknownValueError;

function isUnknownValueError(e: unknown): boolean {
  if (unknownValueError !== undefined && e instanceof unknownValueError) return true;
  // Older SDKs do not export the class; its message is stable ("... can't be known during preview").
  return e instanceof Error && /can't be known during preview$/.test(e.message);
}

/** `obj[key]`, or UNKNOWN when the engine does not know the value yet. */
export function readProp(obj: unknown, key: string | number): unknown {
  if (obj === null || typeof obj !== "object") return undefined;
  try {
    return (obj as Record<string | number, unknown>)[key];
  } catch (e) {
    if (isUnknownValueError(e)) return UNKNOWN;
    throw e;
  }
}

/** Follows a path of keys; UNKNOWN as soon as one step is unknown, undefined when one is missing. */
export function readPath(obj: unknown, ...path: Array<string | number>): unknown {
  let current: unknown = obj;
  for (const key of path) {
    if (current === UNKNOWN) return UNKNOWN;
    current = readProp(current, key);
  }
  return current;
}

export interface StringLeaf {
  /** Where the string sits, e.g. `environment.DB_PASSWORD` or `triggers[1]`. */
  path: string;
  value: string;
}

/**
 * Every string inside `value` (objects, arrays, nested), with its path, plus the paths that are
 * not known yet. Object keys are reported as `KEY=value` for maps of strings so that an
 * `environment: { SECRET_KEY: "..." }` is seen as the assignment it becomes on the host.
 */
export function collectStrings(value: unknown, path: string): { strings: StringLeaf[]; unknownPaths: string[] } {
  const strings: StringLeaf[] = [];
  const unknownPaths: string[] = [];
  const walk = (v: unknown, p: string, key?: string): void => {
    if (v === UNKNOWN) {
      unknownPaths.push(p);
    } else if (typeof v === "string") {
      strings.push({ path: p, value: key === undefined ? v : `${key}=${v}` });
    } else if (typeof v === "number" || typeof v === "boolean") {
      strings.push({ path: p, value: String(v) });
    } else if (Array.isArray(v)) {
      const length = readProp(v, "length");
      if (typeof length !== "number") {
        unknownPaths.push(p);
        return;
      }
      for (let i = 0; i < length; i++) walk(readProp(v, i), `${p}[${i}]`);
    } else if (v !== null && typeof v === "object") {
      for (const k of Object.keys(v)) walk(readProp(v, k), `${p}.${k}`, k);
    }
  };
  walk(value, path);
  return { strings, unknownPaths };
}

/** A string property, or UNKNOWN, or undefined when absent or not a string. */
export function readString(obj: unknown, ...path: Array<string | number>): string | Unknown | undefined {
  const v = readPath(obj, ...path);
  if (v === UNKNOWN || typeof v === "string") return v;
  return undefined;
}
