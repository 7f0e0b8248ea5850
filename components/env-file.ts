/**
 * The env file format shared by every consumer of `.env.production`: systemd's
 * `EnvironmentFile=`, python-dotenv and django-environ. They disagree on almost
 * every escape (see docs/ENV-FILE.md), so the one form all three read back
 * byte-for-byte is `KEY='value'` with no `'`, `\`, newline, NUL or `${` in the value.
 * Anything else is refused here, before a byte leaves the machine running Pulumi.
 */
import { createHash } from "node:crypto";

const ENV_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Characters a value may not contain, each with the reason shown to the operator. */
const FORBIDDEN_IN_VALUE: ReadonlyArray<[string, string]> = [
  ["'", "a single quote"],
  ["\\", "a backslash"],
  ["\n", "a newline"],
  ["\r", "a carriage return"],
  ["\0", "a NUL byte"],
];

/** Why `value` cannot be written to the env file, or undefined when it can. Never echoes the value. */
export function valueProblem(value: string): string | undefined {
  const found = FORBIDDEN_IN_VALUE.filter(([ch]) => value.includes(ch)).map(([, what]) => what);
  // python-dotenv expands ${NAME} even inside single quotes (measured on the Debian 13 test host).
  if (value.includes("${")) found.push('"${" (python-dotenv expands it as a variable)');
  if (found.length === 0) return undefined;
  return `contains ${found.join(" and ")}, which systemd, python-dotenv and django-environ do not read back the same way`;
}

/** Why `key` cannot be an env file key, or undefined when it can. */
export function keyProblem(key: string): string | undefined {
  if (ENV_KEY_PATTERN.test(key)) return undefined;
  return `is not a valid environment variable name (use letters, digits and _, not starting with a digit)`;
}

/**
 * Django's own rules for SECRET_KEY (`manage.py check --deploy`, security.W009):
 * at least 50 characters, at least 5 distinct ones, no `django-insecure-` prefix.
 */
export function djangoSecretKeyProblem(value: string): string | undefined {
  if (value.length < 50) return `is ${value.length} characters long; Django requires at least 50`;
  if (new Set(value).size < 5) return "has fewer than 5 distinct characters; Django requires at least 5";
  if (value.startsWith("django-insecure-")) return "starts with django-insecure-, which Django rejects for production";
  return undefined;
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
 * A short, stable fingerprint of content that is safe to show: 16 hex digits of
 * SHA-256. Only ever applied to documents that contain a generated secret of at
 * least 50 random characters, so it cannot be brute-forced back to the values.
 */
export function fingerprint(content: string): string {
  return createHash("sha256").update(content, "utf8").digest("hex").slice(0, 16);
}
