/**
 * The rules about secret values, in one place: how long a generated secret must be, what Django
 * accepts as SECRET_KEY, how a generated secret's resource is named, and what a plain setting
 * must not look like because it is a credential. The program (config, env file, generated
 * secrets), the policy pack and the tests all import these, so they cannot drift apart.
 * No Pulumi import: the policy pack runs this module in the analyzer process.
 */

/** Django rejects a shorter SECRET_KEY (`manage.py check --deploy`, security.W009). */
const MIN_SECRET_KEY_LENGTH = 50;
/** Every other generated secret: at least 32 characters (about 190 bits from the safe alphabet). */
const MIN_GENERATED_LENGTH = 32;
export const MAX_GENERATED_LENGTH = 512;
export const DEFAULT_GENERATED_LENGTH = 64;

/** The shortest value a generated secret under `envKey` may have. */
export function minimumLength(envKey: string): number {
  return envKey === "SECRET_KEY" ? MIN_SECRET_KEY_LENGTH : MIN_GENERATED_LENGTH;
}

/**
 * Django's own rules for SECRET_KEY (`manage.py check --deploy`, security.W009): at least 50
 * characters, at least 5 distinct ones, no `django-insecure-` prefix. Never echoes the value.
 */
export function djangoSecretKeyProblem(value: string): string | undefined {
  if (value.startsWith("django-insecure-")) {
    return "starts with django-insecure-, the prefix of keys made by startproject, which Django rejects for production";
  }
  if (value.length < MIN_SECRET_KEY_LENGTH) {
    return `is ${value.length} characters long; Django requires at least ${MIN_SECRET_KEY_LENGTH}`;
  }
  if (new Set(value).size < 5) return "has fewer than 5 distinct characters; Django requires at least 5";
  return undefined;
}

const GENERATED_PREFIX = "generated-";

/** The RandomPassword resource name of the generated secret written under `envKey`. */
export function generatedResourceName(envKey: string): string {
  return `${GENERATED_PREFIX}${envKey}`;
}

/** The env key of a generated secret's resource (`generated-SECRET_KEY` -> `SECRET_KEY`), or undefined. */
export function envKeyOfGeneratedResource(resourceName: string): string | undefined {
  return resourceName.startsWith(GENERATED_PREFIX) ? resourceName.slice(GENERATED_PREFIX.length) : undefined;
}

/**
 * Key names that say "credential". Word parts are matched between `_` separators (or the ends),
 * so `DB_PASSWORD`, `EMAIL_PASS`, `SENDGRID_API_KEY`, `SENTRY_DSN` match and `PASSPORT_URL`,
 * `KEYCLOAK_REALM`, `DB_PORT` do not.
 */
const CREDENTIAL_NAME_PARTS =
  /(?:^|_)(?:PASSWORD|PASSWD|PASS|PWD|SECRET|TOKEN|PRIVATE|KEY|DSN|CREDENTIALS?|APIKEY)(?:_|$)/i;
/** A key id is not secret on its own, but `AWS_ACCESS_KEY_ID` always travels with its secret. */
const CREDENTIAL_NAMES = /^(?:AWS_ACCESS_KEY_ID|AWS_SESSION_TOKEN)$/i;

/** Value shapes of credentials, each with what it looks like (never the value itself). */
const CREDENTIAL_VALUE_SHAPES: ReadonlyArray<[RegExp, string]> = [
  [/^[a-z][a-z0-9+.-]*:\/\/[^/?#\s@:]*:[^/?#\s@]+@/i, "a URL with a password in it (user:password@)"],
  [/^[a-z][a-z0-9+.-]*:\/\/[A-Za-z0-9]{16,}@/i, "a DSN with a key in it (key@host, as Sentry's)"],
  [/(?:^|\s)password\s*=/i, "a connection string with password="],
  [/\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/, "an AWS access key id"],
  [/^SG\.[\w-]{16,}\.[\w-]{16,}$/, "a SendGrid API key"],
  [/\b[sr]k_(?:live|test)_[A-Za-z0-9]{8,}/, "a Stripe/Paystack secret key"],
  [/\b(?:gh[pousr]_[A-Za-z0-9]{30,}|xox[abposr]-[A-Za-z0-9-]{10,})/, "a GitHub or Slack token"],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "a private key"],
];

/**
 * Why a plain (committed, unredacted) setting `key=value` looks like a credential, or undefined.
 * Judged by name and by value shape, because `REDIS_URL=redis://:pw@host` says nothing in its name.
 */
export function plainCredentialProblem(key: string, value: string): string | undefined {
  if (CREDENTIAL_NAME_PARTS.test(key) || CREDENTIAL_NAMES.test(key)) return `the name ${key} says it is a credential`;
  const shape = CREDENTIAL_VALUE_SHAPES.find(([pattern]) => pattern.test(value));
  return shape ? `the value looks like ${shape[1]}` : undefined;
}
