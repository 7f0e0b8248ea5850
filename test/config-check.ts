/** Runs one config section parser against a fresh Problems collector and returns what it found. */
import assert from "node:assert/strict";
import { ConfigError } from "../components/config";
import { Problems } from "../components/config/problems";

export interface Checked<T> {
  result: T;
  /** Full problem lines: `pms-secrets:<key>: <what>. Fix: <fix>`. */
  problems: readonly string[];
  warnings: readonly string[];
}

export function check<T>(parse: (problems: Problems) => T): Checked<T> {
  const problems = new Problems();
  const result = parse(problems);
  try {
    problems.throwIfAny("test");
    return { result, problems: [], warnings: problems.warnings };
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return { result, problems: e.problems, warnings: problems.warnings };
  }
}

/** The keys (without the project prefix) that have a problem. */
export function keysOf(problems: readonly string[]): string[] {
  return problems.map((p) => p.slice("pms-secrets:".length, p.indexOf(": ")));
}

/** Asserts exactly one problem names `key`, that it matches `what`, and that it gives a fix. */
export function assertProblem(problems: readonly string[], key: string, what: RegExp): string {
  const hits = problems.filter((p) => p.startsWith(`pms-secrets:${key}: `));
  assert.equal(hits.length, 1, `expected one problem for ${key}, got:\n${problems.join("\n")}`);
  assert.match(hits[0], what);
  assert.match(hits[0], /\. Fix: \S/);
  return hits[0];
}
