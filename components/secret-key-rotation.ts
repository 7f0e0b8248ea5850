/**
 * How a SECRET_KEY rotation treats the previous key (issue 10): graceful by default, emergency on
 * purpose.
 *
 * Where the previous key comes from: the host. The rollout script compares the delivered
 * SECRET_KEY with the one in the host's current env file; when they differ (a rotation, or the
 * first deploy onto a hand-written file: adoption) it writes the old one first into
 * SECRET_KEY_FALLBACKS, newest first, at most `secretKeyFallbacks` keys (rollout.sh,
 * compose_secret_key_fallbacks). Chosen over keeping the previous value in state (a second
 * RandomPassword, or the stored secret's AWSPREVIOUS version) because:
 *   - the old key never travels: not in state, not in the secret store, not on stdin again;
 *   - adoption works the same way: the hand-written key the users' sessions were signed with is
 *     only on the host, and nobody has to type it into config;
 *   - it is stable: a re-run without a keeper change computes the same list from the same file, so
 *     the file, the process-environment proof and the program's fingerprint (of the delivered
 *     part only) stay equal and nothing restarts;
 *   - the proof covers it: the script hashes SECRET_KEY_FALLBACKS (or its absence) together with
 *     the delivered keys, so a process still holding a retired list fails the rollout.
 * The cost: the store holds the current key only (a host rebuilt from the store starts with no
 * fallback), and the list is per host (hosts rolled together keep the same list).
 *
 * Emergency: a keeper of SECRET_KEY (`rotate.SECRET_KEY` or the stack-wide `rotation`) that starts
 * with `emergency` (e.g. `emergency-2026-11-26`). One config change both rotates the key and
 * makes the rollout keep no fallback and delete the host's backups (they hold the compromised
 * key) once the new env is proven. The preview shows `--emergency` in every rollout command and
 * the program warns. It stays in force while the keeper says so: the next routine rotation sets
 * a plain keeper again (a boolean flag would need a second change to rotate, and removing a
 * separate emergency keeper would itself rotate the key once more).
 */
import { SAFE_SPECIALS } from "./alphabet";
import type { GeneratedSecretSpec } from "./config/generated";
import type { Problems } from "./config/problems";
import { isObject, NumberRange, wholeNumber } from "./config/read";

export const SECRET_KEY = "SECRET_KEY";
/** The env key the host writes; Django reads it only through settings.py (see README). */
export const FALLBACKS_KEY = "SECRET_KEY_FALLBACKS";
export const DEFAULT_SECRET_KEY_FALLBACKS = 1;
export const MAX_SECRET_KEY_FALLBACKS = 5;
/** `secretKeyFallbacks` (docs/CONFIG.md quotes it; test/config-doc.test.ts). */
export const SECRET_KEY_FALLBACKS_RANGE: NumberRange = {
  min: 0,
  max: MAX_SECRET_KEY_FALLBACKS,
  default: DEFAULT_SECRET_KEY_FALLBACKS,
  unit: "the number of previous SECRET_KEYs each host keeps (0 retires them all)",
};
const EMERGENCY_PREFIX = /^emergency/i;

export interface SecretKeyRotation {
  /** How many previous keys the hosts keep in SECRET_KEY_FALLBACKS (0 retires them all). */
  fallbacks: number;
  /** Whether SECRET_KEY's keeper marks an emergency rotation. */
  emergency: boolean;
  /** Which keeper said so, for the warning (`rotate.SECRET_KEY` or `rotation`), when emergency. */
  emergencyKeeper?: string;
}

/**
 * The specials of SECRET_KEY's alphabet: the safe ones without the comma, because the comma
 * separates SECRET_KEY_FALLBACKS. A key with a comma could not be kept as a fallback.
 */
export function secretKeySpecials(specials: string): string {
  return specials.replace(/,/g, "");
}

/** The specials a generated secret under `key` draws from. */
export function specialsFor(key: string, specials: string): string {
  return key === SECRET_KEY ? secretKeySpecials(specials) : specials;
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

/**
 * The rollout arguments for this mode. Passed only when not the script's default (1 fallback,
 * routine), so a stack that sets nothing keeps its command text.
 */
export function secretKeyRolloutArgs(rotation: SecretKeyRotation): string[] {
  if (rotation.emergency) return ["--emergency"];
  return rotation.fallbacks === DEFAULT_SECRET_KEY_FALLBACKS
    ? []
    : ["--secret-key-fallbacks", String(rotation.fallbacks)];
}

/** What the preview says about the mode, beyond the command line (one warning in an emergency). */
export function secretKeyRotationWarnings(rotation: SecretKeyRotation): string[] {
  if (!rotation.emergency) return [];
  return [
    `${rotation.emergencyKeeper} starts with "emergency": SECRET_KEY rollouts keep NO fallback. When SECRET_KEY changes, ` +
      "every session, password-reset link and signed value made with the old key is rejected at once, and each host " +
      "deletes its env backups (they hold the old key) after the new env is proven. For the next routine rotation " +
      "set a keeper that does not start with emergency.",
  ];
}

/** Which env keys may not be set in config because the host composes them. */
export function reservedKeyProblem(key: string): string | undefined {
  return key === FALLBACKS_KEY
    ? "is written by each host from its previous SECRET_KEY (never sent by the program)"
    : undefined;
}

/** The README's settings.py lines, kept here so tests can check the README quotes them. */
export const SETTINGS_SNIPPET = `SECRET_KEY_FALLBACKS = [k for k in os.getenv("SECRET_KEY_FALLBACKS", "").split(",") if k]`;

/** SECRET_KEY's specials with the default alphabet: `-_.+=`. */
export const SECRET_KEY_ALPHABET_SPECIALS = secretKeySpecials(SAFE_SPECIALS);

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
  const fallbacks = wholeNumber(problems, "secretKeyFallbacks", input.fallbacks, SECRET_KEY_FALLBACKS_RANGE);
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
        `remove it; set secretKeyFallbacks (0..${MAX_SECRET_KEY_FALLBACKS}) to choose how many previous keys the hosts keep`,
      );
    }
  }
  return secretKeyRotation(input.generated, fallbacks);
}

/** One line for the stack outputs, so a preview shows the mode even when no key changes. */
export function describeSecretKeyRotation(rotation: SecretKeyRotation): string {
  if (rotation.emergency) {
    return `EMERGENCY (${rotation.emergencyKeeper}): no previous SECRET_KEY kept; host env backups deleted after the new env is proven`;
  }
  if (rotation.fallbacks === 0) return "graceful fallbacks retired: hosts keep no previous SECRET_KEY";
  return `graceful: hosts keep the previous SECRET_KEY${rotation.fallbacks > 1 ? `s (up to ${rotation.fallbacks})` : ""} in SECRET_KEY_FALLBACKS`;
}
