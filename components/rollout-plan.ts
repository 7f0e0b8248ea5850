/**
 * The order in which hosts receive a new env: a canary first, then the rest in batches, like
 * Ansible's `serial`. Hosts of one batch roll in parallel (their resources do not depend on each
 * other, so the engine runs them at once); each batch waits for every host of the batch before
 * it, so a failed host stops the run before the next batch starts.
 */

/** One batch size: a number of hosts, or a percentage of all hosts (rounded up, at least 1). */
export type BatchSize = { hosts: number } | { percent: number };

/** One host at a time: what the program did before batches existed, and still the default. */
export const DEFAULT_BATCHES: readonly BatchSize[] = [{ hosts: 1 }];

/** How many hosts `size` means in a fleet of `total`. */
export function batchCount(size: BatchSize, total: number): number {
  if ("hosts" in size) return size.hosts;
  return Math.max(1, Math.ceil((size.percent * total) / 100));
}

/**
 * Splits `hosts` (in config order) into batches of the given sizes; the last size repeats until
 * every host has a batch. `[1, "50%"]` on 6 hosts gives 1, 3, 2; on 3 hosts 1, 2.
 */
export function planBatches<T>(hosts: readonly T[], sizes: readonly BatchSize[] = DEFAULT_BATCHES): T[][] {
  if (sizes.length === 0) throw new Error("planBatches: no batch sizes (the config parser refuses an empty list)");
  const batches: T[][] = [];
  let next = 0;
  for (let i = 0; next < hosts.length; i++) {
    const n = batchCount(sizes[Math.min(i, sizes.length - 1)], hosts.length);
    batches.push(hosts.slice(next, next + n));
    next += n;
  }
  return batches;
}

/**
 * Like planBatches, but the first host matching `first` rolls alone before every batch (the
 * configured sizes then apply to the others, in config order). Used for the shared database's
 * admin host: it changes DB_PASSWORD in PostgreSQL before any other host moves to it.
 * No match: exactly planBatches.
 */
export function planBatchesAfter<T>(
  hosts: readonly T[],
  sizes: readonly BatchSize[] = DEFAULT_BATCHES,
  first?: (host: T) => boolean,
): T[][] {
  const i = first === undefined ? -1 : hosts.findIndex(first);
  if (i < 0) return planBatches(hosts, sizes);
  return [[hosts[i]], ...planBatches([...hosts.slice(0, i), ...hosts.slice(i + 1)], sizes)];
}

/** The config text of a batch list, for logs and docs: `[1, "50%"]`. */
export function describeBatches(sizes: readonly BatchSize[]): string {
  return `[${sizes.map((s) => ("hosts" in s ? String(s.hosts) : `"${s.percent}%"`)).join(", ")}]`;
}

/**
 * SECRET_KEY phases (issue 20). 2, the default: a routine rollout to more than one host runs in
 * two phases in one `pulumi up`. Phase 1 (`accept`) gives every host the new env with the new
 * SECRET_KEY only in SECRET_KEY_FALLBACKS: it verifies what the new key signed, and still signs
 * with its current key. Phase 2 (`rollout`) starts only when phase 1 finished on every host, and
 * makes each host sign with the new key, the old one kept as a fallback. So no host ever signs
 * with a key another host rejects: nobody is logged out and no form or link fails while the
 * fleet moves. 1: one phase (each host accepts and signs at once), as before.
 */
export type SecretKeyPhases = 1 | 2;
export const DEFAULT_SECRET_KEY_PHASES: SecretKeyPhases = 2;

/** Which rollout a phase runs on each host: `accept` (the agent's --secret-key-accept) or the full `rollout`. */
export type RolloutStep = "accept" | "rollout";

export interface RolloutPhase<T> {
  step: RolloutStep;
  /** Canary and batches within the phase (every host exactly once). */
  batches: T[][];
}

export interface RolloutPlanOptions<T> {
  batches?: readonly BatchSize[];
  secretKeyPhases?: SecretKeyPhases;
  /** An emergency SECRET_KEY rotation (the old key must stop working): one phase, as fast as is safe. */
  emergency?: boolean;
  /** The host that goes first and alone (a shared database's admin host); see planBatchesAfter. */
  first?: (host: T) => boolean;
}

/**
 * The phases of one `pulumi up`, in order. Routine: two phases (accept, then rollout) when more
 * than one host rolls and secretKeyPhases is 2, each phase with the configured canary and batches;
 * otherwise one. Emergency: one phase, the canary (the `first` host, else the first in config
 * order) alone, then every other host at once whatever rollout.batches says: the window in which
 * some hosts still accept the compromised key is as short as a proven canary allows.
 */
export function planRollout<T>(hosts: readonly T[], options: RolloutPlanOptions<T> = {}): RolloutPhase<T>[] {
  const sizes = options.batches ?? DEFAULT_BATCHES;
  if (options.emergency) {
    const i = options.first === undefined ? -1 : hosts.findIndex(options.first);
    const canary = i < 0 ? 0 : i;
    const batches = [hosts.slice(canary, canary + 1), [...hosts.slice(0, canary), ...hosts.slice(canary + 1)]];
    return [{ step: "rollout", batches: batches.filter((b) => b.length > 0) }];
  }
  const batches = planBatchesAfter(hosts, sizes, options.first);
  if (hosts.length > 1 && (options.secretKeyPhases ?? DEFAULT_SECRET_KEY_PHASES) === 2) {
    return [
      { step: "accept", batches },
      { step: "rollout", batches: batches.map((b) => [...b]) },
    ];
  }
  return [{ step: "rollout", batches }];
}
