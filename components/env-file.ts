/**
 * The env file format shared by every consumer of `.env.production`: systemd's
 * `EnvironmentFile=`, python-dotenv and django-environ. They disagree on almost
 * every escape (see docs/ENV-FILE.md), so the one form all three read back
 * byte-for-byte is `KEY='value'` with no `'`, `\`, line break, control character or `${`
 * in the value and no leading `$`.
 * Anything else is refused here, before a byte leaves the machine running Pulumi.
 */
import { createHash, createHmac } from "node:crypto";
import { djangoSecretKeyProblem } from "./secret-rules";

const ENV_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * What a value may not contain, each with the reason shown to the operator (never the value).
 * - `'` and `\`: the only quoting all three parsers share is single quotes without escapes.
 * - line breaks as ANY of them sees one: systemd and python-dotenv break at LF and CR;
 *   django-environ reads the file with Python's `str.splitlines()`, which also breaks at
 *   VT, FF, the separators U+001C-U+001E, NEL (U+0085), U+2028 and U+2029.
 * - every other control character (U+0000-U+001F except tab, U+007F-U+009F): never part of a
 *   real setting, invisible in a review, and NUL ends the value for systemd.
 * - `${`: python-dotenv expands it even inside single quotes (measured on the Debian 13 host).
 * - a leading `$`: django-environ reads `$NAME` as "the value of the variable NAME" (proxy).
 */
const VALUE_RULES: ReadonlyArray<[RegExp, string]> = [
  [/'/, "a single quote"],
  [/\\/, "a backslash"],
  [/[\n\r\v\f\x1c-\x1e\u0085\u2028\u2029]/, "a line break (LF, CR, VT, FF, U+001C-U+001E, U+0085, U+2028 or U+2029)"],
  [/[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f]/, "a control character"],
  [/\$\{/, '"${" (python-dotenv expands it as a variable)'],
  [/^\$/, 'a leading "$" (django-environ reads $NAME as a reference to another variable)'],
];

/** Why `value` cannot be written to the env file, or undefined when it can. Never echoes the value. */
export function valueProblem(value: string): string | undefined {
  const found = VALUE_RULES.filter(([pattern]) => pattern.test(value)).map(([, what]) => what);
  if (found.length === 0) return undefined;
  return `contains ${found.join(" and ")}, which systemd, python-dotenv and django-environ do not read back the same way`;
}

/** Why `key` cannot be an env file key, or undefined when it can. */
export function keyProblem(key: string): string | undefined {
  if (ENV_KEY_PATTERN.test(key)) return undefined;
  return `is not a valid environment variable name (use letters, digits and _, not starting with a digit)`;
}

export class EnvFileError extends Error {
  constructor(readonly problems: string[]) {
    super(`The env file cannot be rendered:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "EnvFileError";
  }
}

/**
 * Renders the env file. Keys are sorted so that the same values always give the
 * same bytes (and the same fingerprint): a re-run with nothing changed must not
 * look like a change. Errors name the key, never the value.
 */
export function renderEnvFile(values: Readonly<Record<string, string>>, header: readonly string[] = []): string {
  const problems: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    const kp = keyProblem(key);
    if (kp) problems.push(`env key ${JSON.stringify(key)} ${kp}`);
    const vp = valueProblem(value);
    if (vp) problems.push(`the value of ${key} ${vp}`);
  }
  if ("SECRET_KEY" in values) {
    const sp = djangoSecretKeyProblem(values.SECRET_KEY);
    if (sp) problems.push(`SECRET_KEY ${sp}`);
  }
  if (problems.length > 0) throw new EnvFileError(problems);
  const lines = header.map((h) => `# ${h.replace(/[\r\n]/g, " ")}`);
  for (const key of Object.keys(values).sort()) lines.push(`${key}='${values[key]}'`);
  return lines.join("\n") + "\n";
}

/** Reads back a file written by renderEnvFile (used by tests and by the rollout's redaction). */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)='([^'\\]*)'$/.exec(line);
    if (!m)
      throw new Error(`not an env file line written by pms-secrets: line ${JSON.stringify(line.slice(0, 20))}...`);
    out[m[1]] = m[2];
  }
  return out;
}

/**
 * A short, stable fingerprint of content that holds no secret (the rollout script): 16 hex
 * digits of SHA-256.
 */
export function fingerprint(content: string): string {
  return createHash("sha256").update(content, "utf8").digest("hex").slice(0, 16);
}

/**
 * The env file's fingerprint as previews, triggers and outputs show it: 16 hex digits of
 * HMAC-SHA-256 under `key`, a random value kept only in the stack's state (stack.ts). A plain hash
 * would be an offline guessing oracle: whoever holds the previous env file (the app's group, an
 * old backup) knows every value but a newly supplied one, and could test guesses of a weak one
 * against the published hash. Without the key no guess can be checked. Same key, same file:
 * same fingerprint, so a re-run with nothing changed still changes nothing.
 */
export function envFingerprint(key: string, envFile: string): string {
  return createHmac("sha256", key).update(envFile, "utf8").digest("hex").slice(0, 16);
}

/** The key of envFingerprint: a RandomPassword without keepers (never rotated), letters and digits. */
export const ENV_FINGERPRINT_KEY = {
  /** Resource name of the RandomPassword in the stack. */
  name: "env-fingerprint-key",
  args: { length: 64, upper: true, lower: true, numeric: true, special: false },
} as const;
