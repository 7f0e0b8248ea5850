import type { ResourceValidationPolicy } from "@pulumi/policy";
import { readPath, UNKNOWN } from "../props";
import { ENV_FINGERPRINT_KEY } from "../../components/env-file";
import { generatedEnvKey, RANDOM_PASSWORD } from "./types";

const DEFAULT_MAX_KEEPER_AGE_DAYS = 90;
const DAY_MS = 24 * 60 * 60 * 1000;

/** The keepers that rotate a generated secret: the global one and the secret's own. */
const KEEPER_NAMES = ["rotation", "rotate"] as const;

/**
 * Milliseconds since the epoch for an ISO date (`2026-11-25`, or a full ISO timestamp), else
 * undefined. A date followed by a counter (`2026-11-25.2`, `2026-11-25-2`, `2026-11-25_b`) counts
 * as that date: the documented keeper convention, so that a second rotation on the same day
 * changes the keeper and still has an age. So does an emergency keeper (`emergency-2026-11-25`,
 * `emergency-2026-11-25.2`): the program reads the `emergency` prefix, the age is the date's.
 */
export function parseKeeperDate(value: string): number | undefined {
  const trimmed = value.trim().replace(/^emergency-(?=\d{4}-)/, "");
  const counted = /^(\d{4}-\d{2}-\d{2})[._-][A-Za-z0-9._-]+$/.exec(trimmed);
  const text = counted ? counted[1] : trimmed;
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/.exec(text);
  if (!m) return undefined;
  const time = Date.parse(text.length === 10 ? `${text}T00:00:00Z` : text);
  if (Number.isNaN(time)) return undefined;
  // Reject dates Date.parse would roll over (2026-02-30).
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  if (d.getUTCFullYear() !== Number(m[1]) || d.getUTCMonth() !== Number(m[2]) - 1 || d.getUTCDate() !== Number(m[3])) {
    return undefined;
  }
  return time;
}

/**
 * What to say about the age of a generated secret, from its keepers, or undefined when it is
 * recent enough. A new value is drawn whenever ANY keeper changes, so the secret is at most as
 * old as its newest date keeper; a keeper that is not a date could have changed at any time.
 */
export function keeperAgeFinding(
  subject: string,
  envKey: string,
  keepers: Record<string, unknown> | undefined,
  maxAgeDays: number,
  now: number,
): string | undefined {
  const present = KEEPER_NAMES.flatMap((name) => {
    const value = keepers?.[name];
    return typeof value === "string" && value.trim() !== "" ? [{ name, value }] : [];
  });
  const howToRotate =
    `rotate with \`pulumi config set --path 'rotate.${envKey}' YYYY-MM-DD\` (this secret) or ` +
    `\`pulumi config set rotation YYYY-MM-DD\` (all generated secrets), using today's date`;
  if (present.length === 0) {
    return `${subject} has no rotation keeper (keepers.rotation / keepers.rotate), so its age cannot be judged; ${howToRotate}.`;
  }
  const dated = present.flatMap((k) => {
    const time = parseKeeperDate(k.value);
    return time === undefined ? [] : [{ ...k, ageDays: Math.floor((now - time) / DAY_MS) }];
  });
  const newest = dated.sort((a, b) => a.ageDays - b.ageDays)[0];
  if (newest && newest.ageDays <= maxAgeDays) return undefined;
  const undated = present.filter((k) => parseKeeperDate(k.value) === undefined);
  if (undated.length > 0) {
    return (
      `${subject}: keeper ${undated.map((k) => `${k.name}="${k.value}"`).join(", ")} is not an ISO date ` +
      `(YYYY-MM-DD, optionally followed by a counter: YYYY-MM-DD.2), so the age of this secret cannot be judged; use the rotation date as the keeper value.`
    );
  }
  return (
    `${subject} was last rotated ${newest.ageDays} days ago (newest keeper ${newest.name}=${newest.value}), ` +
    `more than the ${maxAgeDays} days allowed (policy config maxKeeperAgeDays); ${howToRotate}.`
  );
}

interface KeeperAgeConfig {
  maxKeeperAgeDays?: number;
}

/** Advisory: a generated secret whose rotation keepers say it is older than `maxKeeperAgeDays`. */
export const rotationKeeperAge: ResourceValidationPolicy = {
  name: "rotation-keeper-age",
  description:
    "Warns when a generated secret's rotation keeper (an ISO date) is older than maxKeeperAgeDays (default 90).",
  enforcementLevel: "advisory",
  severity: "medium",
  configSchema: {
    properties: {
      maxKeeperAgeDays: { type: "integer", minimum: 1, default: DEFAULT_MAX_KEEPER_AGE_DAYS },
    },
  },
  validateResource: (args, reportViolation) => {
    if (args.type !== RANDOM_PASSWORD) return;
    // The key of the published env fingerprint (components/env-file.ts) stays in state, never
    // reaches a host or the secret store, and has no keeper by design: it is not a secret to rotate.
    if (args.name === ENV_FINGERPRINT_KEY.name) return;
    const configured = args.getConfig<KeeperAgeConfig>().maxKeeperAgeDays;
    const maxAgeDays = typeof configured === "number" && configured > 0 ? configured : DEFAULT_MAX_KEEPER_AGE_DAYS;
    const keepers = readPath(args.props, "keepers");
    if (keepers === UNKNOWN) return; // keepers come from plain config; only a computed keeper is unknown
    const plain: Record<string, unknown> = {};
    if (keepers !== null && typeof keepers === "object") {
      for (const name of KEEPER_NAMES) {
        const v = readPath(keepers, name);
        if (v !== UNKNOWN) plain[name] = v;
      }
    }
    const envKey = generatedEnvKey(args.name);
    const finding = keeperAgeFinding(
      `generated secret ${envKey} (${args.name})`,
      envKey,
      plain,
      maxAgeDays,
      Date.now(),
    );
    if (finding) reportViolation(finding);
  },
};
