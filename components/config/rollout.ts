/**
 * `rollout`: how the fleet is rolled. `rollout.batches` lists batch sizes, each a number of hosts
 * or a percentage of all hosts ("50%"); the first is the canary, the last repeats. Default [1]:
 * one host at a time.
 */
import { BatchSize, DEFAULT_BATCHES } from "../rollout-plan";
import type { Problems } from "./problems";
import { isObject, scalar, unknownKeys } from "./read";

export interface RolloutSettings {
  batches: BatchSize[];
}

const FIX = "e.g. `pulumi config set --path 'rollout.batches[0]' 1` and `--path 'rollout.batches[1]' \"50%\"`";

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

export function parseRollout(problems: Problems, value: unknown): RolloutSettings {
  if (value === undefined) return { batches: [...DEFAULT_BATCHES] };
  if (!isObject(value)) {
    problems.add("rollout", "must be an object with `batches`", FIX);
    return { batches: [...DEFAULT_BATCHES] };
  }
  unknownKeys(problems, "rollout", value, ["batches"]);
  const list = value.batches;
  if (list === undefined) return { batches: [...DEFAULT_BATCHES] };
  if (!Array.isArray(list) || list.length === 0) {
    problems.add("rollout.batches", "must be a non-empty list of batch sizes", FIX);
    return { batches: [...DEFAULT_BATCHES] };
  }
  const sizes = list.map((v, i) => batchSize(problems, `rollout.batches[${i}]`, v));
  return { batches: sizes.every((s) => s !== undefined) ? sizes : [...DEFAULT_BATCHES] };
}
