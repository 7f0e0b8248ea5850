/**
 * `rollout`: how the fleet is rolled. `rollout.batches` lists batch sizes, each a number of hosts
 * or a percentage of all hosts ("50%"); the first is the canary, the last repeats. Default [1]:
 * one host at a time. `rollout.secretKeyPhases` (2, the default, or 1): whether a routine rollout
 * to more than one host first makes every host accept a new SECRET_KEY and only then sign with it
 * (rollout-plan.ts, planRollout; docs/ZERO-DOWNTIME.md).
 */
import { BatchSize, DEFAULT_BATCHES, DEFAULT_SECRET_KEY_PHASES, SecretKeyPhases } from "../rollout-plan";
import type { Problems } from "./problems";
import { isObject, scalar, unknownKeys } from "./read";

export interface RolloutSettings {
  batches: BatchSize[];
  /** 2: accept the new SECRET_KEY on every host, then sign with it; 1: one phase (each host at once). */
  secretKeyPhases: SecretKeyPhases;
}

/** The keys of `rollout`. */
export const ROLLOUT_KEYS = ["batches", "secretKeyPhases"] as const;

const FIX = "e.g. `pulumi config set --path 'rollout.batches[0]' 1` and `--path 'rollout.batches[1]' \"50%\"`";
const PHASES_FIX =
  "set `pulumi config set --path rollout.secretKeyPhases 2` (every host accepts a new SECRET_KEY before any signs with it; the default) or 1 (one phase: users whose requests reach a host not yet rotated are logged out meanwhile)";

function batchSize(problems: Problems, key: string, v: unknown): BatchSize | undefined {
  const text = scalar(v).trim();
  const percent = /^(\d{1,3})%$/.exec(text);
  if (percent) {
    const p = Number(percent[1]);
    if (p >= 1 && p <= 100) return { percent: p };
  } else if (/^\d{1,4}$/.test(text) && Number(text) >= 1) {
    return { hosts: Number(text) };
  }
  problems.add(
    key,
    `${JSON.stringify(v)} is not a batch size`,
    `use a number of hosts (1 or more) or a percentage from "1%" to "100%"; ${FIX}`,
  );
  return undefined;
}

function secretKeyPhases(problems: Problems, v: unknown): SecretKeyPhases {
  if (v === undefined) return DEFAULT_SECRET_KEY_PHASES;
  const text = scalar(v).trim();
  if (text === "1" || text === "2") return Number(text) as SecretKeyPhases;
  problems.add("rollout.secretKeyPhases", `${JSON.stringify(v)} is not 1 or 2`, PHASES_FIX);
  return DEFAULT_SECRET_KEY_PHASES;
}

export function parseRollout(problems: Problems, value: unknown): RolloutSettings {
  const defaults = (): RolloutSettings => ({
    batches: [...DEFAULT_BATCHES],
    secretKeyPhases: DEFAULT_SECRET_KEY_PHASES,
  });
  if (value === undefined) return defaults();
  if (!isObject(value)) {
    problems.add("rollout", "must be an object with `batches` and/or `secretKeyPhases`", FIX);
    return defaults();
  }
  unknownKeys(problems, "rollout", value, ROLLOUT_KEYS);
  const phases = secretKeyPhases(problems, value.secretKeyPhases);
  const list = value.batches;
  if (list === undefined) return { ...defaults(), secretKeyPhases: phases };
  if (!Array.isArray(list) || list.length === 0) {
    problems.add("rollout.batches", "must be a non-empty list of batch sizes", FIX);
    return { ...defaults(), secretKeyPhases: phases };
  }
  const sizes = list.map((v, i) => batchSize(problems, `rollout.batches[${i}]`, v));
  return {
    batches: sizes.every((s) => s !== undefined) ? sizes : [...DEFAULT_BATCHES],
    secretKeyPhases: phases,
  };
}
