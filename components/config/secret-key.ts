/**
 * `secretKeyFallbacks` and SECRET_KEY's rotation mode (routine or emergency, from its keepers).
 * What the modes do on the hosts, and why the previous key comes from the host: secret-key-rotation.ts.
 */
import { agentRange } from "../agent-options";
import type { GeneratedSecretSpec } from "./generated";
import type { Problems } from "./problems";
import { isObject, NumberRange, wholeNumber } from "./read";

const SECRET_KEY = "SECRET_KEY";
/** The env key the host writes; Django reads it only through settings.py (see README). */
export const FALLBACKS_KEY = "SECRET_KEY_FALLBACKS";
/**
 * `secretKeyFallbacks`: the agent's `--secret-key-fallbacks` range and default (agent/options.json);
 * docs/CONFIG.md quotes it (test/config-doc.test.ts).
 */
export const SECRET_KEY_FALLBACKS_RANGE: NumberRange = {
  ...agentRange("--secret-key-fallbacks"),
  unit: "the number of previous SECRET_KEYs each host keeps (0 retires them all)",
};
const FALLBACKS = SECRET_KEY_FALLBACKS_RANGE;
const EMERGENCY_PREFIX = /^emergency/i;

export interface SecretKeyRotation {
  /** How many previous keys the hosts keep in SECRET_KEY_FALLBACKS (0 retires them all). */
  fallbacks: number;
  /** Whether SECRET_KEY's keeper marks an emergency rotation. */
  emergency: boolean;
  /** Which keeper said so, for the warning (`rotate.SECRET_KEY` or `rotation`), when emergency. */
  emergencyKeeper?: string;
}

/** Whether a keeper value marks an emergency rotation. */
export function isEmergencyKeeper(keeper: string): boolean {
  return EMERGENCY_PREFIX.test(keeper.trim());
}

/** The rotation mode from SECRET_KEY's keepers and the parsed fallback count. */
export function secretKeyRotation(generated: readonly GeneratedSecretSpec[], fallbacks: number): SecretKeyRotation {
  const sk = generated.find((g) => g.key === SECRET_KEY);
  const keepers = sk?.keepers ?? { rotation: "", rotate: "" };
  const emergencyKeeper = isEmergencyKeeper(keepers.rotate)
    ? `rotate.${SECRET_KEY}`
    : isEmergencyKeeper(keepers.rotation)
      ? "rotation"
      : undefined;
  return emergencyKeeper ? { fallbacks, emergency: true, emergencyKeeper } : { fallbacks, emergency: false };
}

/** Which env keys may not be set in config because the host composes them. */
export function reservedKeyProblem(key: string): string | undefined {
  return key === FALLBACKS_KEY
    ? "is written by each host from its previous SECRET_KEY (never sent by the program)"
    : undefined;
}

export interface SecretKeyConfigInput {
  /** `pms-secrets:secretKeyFallbacks` as read (undefined when unset). */
  fallbacks: unknown;
  generated: readonly GeneratedSecretSpec[];
  /** The raw `env` map: checked here before its own parser, whose credential-name fix would mislead. */
  env: unknown;
  /** Keys of `secrets` and `generated`. */
  suppliedKeys: Iterable<string>;
}

/** Parses `secretKeyFallbacks` and refuses a configured SECRET_KEY_FALLBACKS (the host writes it). */
export function parseSecretKeyRotation(problems: Problems, input: SecretKeyConfigInput): SecretKeyRotation {
  const fallbacks = wholeNumber(problems, "secretKeyFallbacks", input.fallbacks, FALLBACKS);
  const configuredKeys: Record<string, Iterable<string>> = {
    env: isObject(input.env) ? Object.keys(input.env) : [],
    secrets: input.suppliedKeys,
    generated: input.generated.map((g) => g.key),
  };
  for (const [section, keys] of Object.entries(configuredKeys)) {
    for (const key of keys) {
      const problem = reservedKeyProblem(key);
      if (!problem) continue;
      problems.add(
        `${section}.${key}`,
        `${FALLBACKS_KEY} ${problem}`,
        `remove it; set secretKeyFallbacks (${FALLBACKS.min}..${FALLBACKS.max}) to choose how many previous keys the hosts keep`,
      );
    }
  }
  return secretKeyRotation(input.generated, fallbacks);
}
