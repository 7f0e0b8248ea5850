import type { ResourceValidationArgs, ResourceValidationPolicy, ReportViolation } from "@pulumi/policy";
import { readPath, readString, UNKNOWN } from "../props";
import { SAFE_SPECIALS } from "../../components/alphabet";
import { djangoSecretKeyProblem, minimumLength } from "../../components/secret-rules";
import { generatedEnvKey, RANDOM_PASSWORD, SM_SECRET_VERSION } from "./types";

/**
 * Specials a generated value may contain: the program's own safe set, so the policy and the
 * generator cannot drift apart. None of them is a quote, escape, whitespace, comment, glob or
 * expansion character in an env file, a shell word or the userinfo of a PostgreSQL URL.
 */
export { SAFE_SPECIALS };
/** What @pulumi/random uses when `special` is on and `overrideSpecial` is not set. */
const RANDOM_DEFAULT_SPECIALS = "!@#$%&*()-_=+[]{}<>:?";

/** Shows characters so they can be read in a message, e.g. `'#', '$', ' '`. */
function describeChars(chars: Iterable<string>): string {
  return [...new Set(chars)].map((c) => JSON.stringify(c)).join(", ");
}

function checkRandomPassword(args: ResourceValidationArgs, reportViolation: ReportViolation): void {
  if (args.type !== RANDOM_PASSWORD) return;
  const envKey = generatedEnvKey(args.name);
  const what = `generated secret ${envKey} (${args.name})`;

  const length = readPath(args.props, "length");
  const minimum = minimumLength(envKey);
  if (length !== UNKNOWN) {
    if (typeof length !== "number") {
      reportViolation(`${what} has no numeric length; set generated.${envKey}.length to at least ${minimum}.`);
    } else if (length < minimum) {
      reportViolation(
        `${what} is ${length} characters long; ${envKey === "SECRET_KEY" ? "Django's SECRET_KEY" : "a generated secret"} ` +
          `needs at least ${minimum}. Set generated.${envKey}.length to ${minimum} or more.`,
      );
    }
  }

  // @pulumi/random defaults: upper, lower, numeric and special are all true when not set.
  const flag = (name: string): boolean | Unknown => {
    const v = readPath(args.props, name);
    return v === UNKNOWN ? UNKNOWN : v !== false;
  };
  const special = flag("special");
  if (special === true) {
    const override = readString(args.props, "overrideSpecial");
    if (override === undefined) {
      reportViolation(
        `${what} uses special characters without overrideSpecial, so @pulumi/random draws from its default set ` +
          `${RANDOM_DEFAULT_SPECIALS}, which contains characters unsafe in an env file or shell (${describeChars(
            [...RANDOM_DEFAULT_SPECIALS].filter((c) => !SAFE_SPECIALS.includes(c)),
          )}). Set overrideSpecial to a subset of ${SAFE_SPECIALS}.`,
      );
    } else if (override !== UNKNOWN) {
      const unsafe = [...override].filter((c) => !SAFE_SPECIALS.includes(c));
      if (unsafe.length > 0) {
        reportViolation(
          `${what} allows special characters outside the safe set ${SAFE_SPECIALS}: ${describeChars(unsafe)}. ` +
            `Remove them from the alphabet of generated.${envKey}.`,
        );
      }
    }
  }
  const classes = ["upper", "lower", "numeric"].map(flag);
  if (special === false && classes.every((c) => c === false)) {
    reportViolation(`${what} has every character class (upper, lower, numeric, special) turned off.`);
  }
}

type Unknown = typeof UNKNOWN;

function checkSecretDocument(args: ResourceValidationArgs, reportViolation: ReportViolation): void {
  if (args.type !== SM_SECRET_VERSION) return;
  const document = readString(args.props, "secretString");
  if (document === UNKNOWN || document === undefined) return; // unknown in preview while SECRET_KEY is being generated
  let parsed: unknown;
  try {
    parsed = JSON.parse(document);
  } catch {
    reportViolation(`${args.name}.secretString is not a JSON document (the env keys and values of the app).`);
    return;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    reportViolation(`${args.name}.secretString is not a JSON object of env keys to values.`);
    return;
  }
  const secretKey = (parsed as Record<string, unknown>).SECRET_KEY;
  if (secretKey === undefined) return;
  const problem = typeof secretKey === "string" ? djangoSecretKeyProblem(secretKey) : "is not a string";
  if (problem) {
    reportViolation(
      `SECRET_KEY in ${args.name}.secretString ${problem}. Let the program generate it (generated.SECRET_KEY).`,
    );
  }
}

/**
 * Generated secrets are long enough (SECRET_KEY >= 50, others >= 32), drawn from letters, digits
 * and the safe specials only, and the delivered SECRET_KEY is a valid production Django key.
 */
export const generatedSecretStrength: ResourceValidationPolicy = {
  name: "generated-secret-strength",
  description:
    "Generated secrets are long enough (SECRET_KEY >= 50, others >= 32), use only A-Za-z0-9 and the safe specials, and SECRET_KEY never starts with django-insecure-.",
  enforcementLevel: "mandatory",
  severity: "high",
  validateResource: [checkRandomPassword, checkSecretDocument],
};
