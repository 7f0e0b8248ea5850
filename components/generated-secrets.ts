/**
 * GeneratedSecrets: the values this program creates (SECRET_KEY and any the
 * operator adds), one `random.RandomPassword` each. A value changes only when
 * one of its keepers changes: the stack-wide `rotation` or its own `rotate.<KEY>`.
 * Keepers are plain config (they show in previews), never secret material.
 */
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { ALPHABETS } from "./alphabet";
import type { GeneratedSecretSpec } from "./config";
import { generatedResourceName } from "./secret-rules";
import { specialsFor } from "./secret-key-rotation";

/** The RandomPassword arguments for one spec (pure, so the rules are tested without Pulumi). */
export function randomPasswordArgs(spec: GeneratedSecretSpec): random.RandomPasswordArgs {
  // SECRET_KEY has no comma: it separates SECRET_KEY_FALLBACKS (secret-key-rotation.ts).
  const specials = specialsFor(spec.key, ALPHABETS[spec.alphabet].specials);
  return {
    length: spec.length,
    upper: true,
    lower: true,
    numeric: true,
    special: specials !== "",
    overrideSpecial: specials !== "" ? specials : undefined,
    minUpper: 1,
    minLower: 1,
    minNumeric: 1,
    minSpecial: specials !== "" ? 1 : 0,
    keepers: { rotation: spec.keepers.rotation, rotate: spec.keepers.rotate },
  };
}

export interface GeneratedSecretsArgs {
  /** One entry per generated env key, with its length, alphabet and keepers. */
  secrets: GeneratedSecretSpec[];
}

export class GeneratedSecrets extends pulumi.ComponentResource {
  /** Env key -> generated value. Secret. */
  readonly values: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: GeneratedSecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pms:secrets:GeneratedSecrets", name, {}, opts);
    const results: Record<string, pulumi.Output<string>> = {};
    for (const spec of args.secrets) {
      // The resource name carries the env key (secret-rules.ts), which the policy pack reads back.
      const password = new random.RandomPassword(generatedResourceName(spec.key), randomPasswordArgs(spec), {
        parent: this,
      });
      results[spec.key] = password.result;
    }
    this.values = pulumi.secret(pulumi.all(results));
    this.registerOutputs({ values: this.values });
  }
}
