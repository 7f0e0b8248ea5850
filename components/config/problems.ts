/**
 * Collects what is wrong with a stack config so that every problem is reported at once, each
 * naming its key and the fix. Parsers add to one collector; `parseStackConfig` throws at the end.
 */
import * as pulumi from "@pulumi/pulumi";
import { PROJECT } from "./read";

/**
 * A config the program refuses. A `pulumi.RunError`, so the CLI prints the message alone (no
 * stack trace: the trace would point into this program, not at the stack file).
 */
export class ConfigError extends pulumi.RunError {
  constructor(
    readonly stack: string,
    readonly problems: readonly string[],
  ) {
    super(
      `Stack "${stack}" has ${problems.length} configuration problem${problems.length === 1 ? "" : "s"}; ` +
        `nothing was changed:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
    );
    this.name = "ConfigError";
  }
}

export class Problems {
  readonly #problems: string[] = [];
  readonly #keys = new Set<string>();
  readonly #warnings: string[] = [];

  /**
   * Records that `key` (without the project prefix, e.g. `hosts[0].port`) is wrong. One problem
   * per key: the first rule that fails is the one reported, so the list stays readable.
   */
  add(key: string, what: string, fix: string): void {
    if (this.#keys.has(key)) return;
    this.#keys.add(key);
    this.#problems.push(`${PROJECT}:${key}: ${what}. Fix: ${fix}`);
  }

  /** Something allowed but unwise: shown as a warning, the run goes on. */
  warn(key: string, what: string): void {
    this.#warnings.push(`${PROJECT}:${key} ${what}`);
  }

  /** Whether `key` or anything below it (`key.x`, `key[0]`) already has a problem. */
  has(key: string): boolean {
    return [...this.#keys].some((k) => k === key || k.startsWith(`${key}.`) || k.startsWith(`${key}[`));
  }

  get warnings(): readonly string[] {
    return this.#warnings;
  }

  /** Throws ConfigError listing every problem, if there is any. */
  throwIfAny(stack: string): void {
    if (this.#problems.length > 0) throw new ConfigError(stack, this.#problems);
  }
}
