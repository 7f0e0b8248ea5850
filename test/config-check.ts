/** Runs one config section parser against a fresh Problems collector and returns what it found. */
import assert from "node:assert/strict";
import { ConfigError, parseStackConfig, type RawConfig } from "../components/config";
import { defined } from "./fixtures";
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

/** A test config as the CLI hands it to the program: every key under the project namespace, objects as JSON. */
export function rawConfig(config: Record<string, unknown>): RawConfig {
  return Object.fromEntries(
    Object.entries(defined(config)).map(([k, v]) => [
      `pms-secrets:${k}`,
      typeof v === "string" ? v : JSON.stringify(v),
    ]),
  );
}

/** Every problem parseStackConfig lists for a config (none when it is valid). */
export function stackProblems(config: Record<string, unknown>, stack = "dev"): readonly string[] {
  try {
    parseStackConfig(rawConfig(config), stack);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
  return [];
}
