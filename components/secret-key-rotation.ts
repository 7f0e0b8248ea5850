/**
 * How a SECRET_KEY rotation treats the previous key (issue 10): graceful by default, emergency on
 * purpose.
 *
 * Where the previous key comes from: the host. The rollout script compares the delivered
 * SECRET_KEY with the one in the host's current env file; when they differ (a rotation, or the
 * first deploy onto a hand-written file: adoption) it writes the old one first into
 * SECRET_KEY_FALLBACKS, newest first, at most `secretKeyFallbacks` keys (the host agent,
 * agent/pms_agent/secretkey.py). Chosen over keeping the previous value in state (a second
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
import { agentArgv, unlessDefault } from "./agent-options";
import { SAFE_SPECIALS } from "./alphabet";
import type { SecretKeyRotation } from "./config";

export const SECRET_KEY = "SECRET_KEY";

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

/**
 * The rollout arguments for this mode. Passed only when not the agent's default (1 fallback,
 * routine), so a stack that sets nothing keeps its command text.
 */
export function secretKeyRolloutArgs(rotation: SecretKeyRotation): string[] {
  return agentArgv(
    {
      "--emergency": rotation.emergency,
      "--secret-key-fallbacks": rotation.emergency
        ? undefined
        : unlessDefault("--secret-key-fallbacks", rotation.fallbacks),
    },
    { fragment: true },
  );
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

/** The README's settings.py lines, kept here so tests can check the README quotes them. */
export const SETTINGS_SNIPPET = `SECRET_KEY_FALLBACKS = [k for k in os.getenv("SECRET_KEY_FALLBACKS", "").split(",") if k]`;

/** SECRET_KEY's specials with the default alphabet: `-_.+=`. */
export const SECRET_KEY_ALPHABET_SPECIALS = secretKeySpecials(SAFE_SPECIALS);

/** One line for the stack outputs, so a preview shows the mode even when no key changes. */
export function describeSecretKeyRotation(rotation: SecretKeyRotation): string {
  if (rotation.emergency) {
    return `EMERGENCY (${rotation.emergencyKeeper}): no previous SECRET_KEY kept; host env backups deleted after the new env is proven`;
  }
  if (rotation.fallbacks === 0) return "graceful fallbacks retired: hosts keep no previous SECRET_KEY";
  return `graceful: hosts keep the previous SECRET_KEY${rotation.fallbacks > 1 ? `s (up to ${rotation.fallbacks})` : ""} in SECRET_KEY_FALLBACKS`;
}
