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
