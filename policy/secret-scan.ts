/**
 * Pure detectors for secret material in text that is NOT supposed to carry any: a command line,
 * a trigger, an environment map. Findings never contain the matched text, only what was found
 * and where, so a violation message cannot become the leak it reports.
 */

export interface Finding {
  /** What was found, e.g. "a PEM private key". */
  what: string;
  /** 0-based offset of the match in the scanned text. */
  index: number;
}

/** Names whose value is a credential when assigned (`DB_PASSWORD=...`, `export SECRET_KEY=...`). */
const SECRET_NAME_SUFFIXES = [
  "SECRET_KEY",
  "SECRET",
  "PASSWORD",
  "PASSWD",
  "TOKEN",
  "API_KEY",
  "PRIVATE_KEY",
  "ACCESS_KEY",
  "CLIENT_ID",
] as const;

/** True when an env/config key names a credential (used to pick secret values out of env files). */
export function isSecretName(name: string): boolean {
  const upper = name.toUpperCase();
  return SECRET_NAME_SUFFIXES.some((suffix) => upper === suffix || upper.endsWith(`_${suffix}`));
}

const PEM_PRIVATE_KEY = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----/g;
const AWS_ACCESS_KEY_ID = /(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])/g;
const ASSIGNMENT = /(?<![A-Za-z0-9_])([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*("[^"]*"|'[^']*'|[^\s;&|)]*)/g;
/** Runs of characters a generated or provider-issued token is made of (incl. base64 and the safe specials). */
const TOKEN_RUN = /[A-Za-z0-9+/=_\-.~!*,:?@^]{32,}/g;

/** Shannon entropy in bits per character. */
function entropyBitsPerChar(text: string): number {
  if (text.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const ch of text) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) {
    const p = n / text.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/** Minimum length and entropy for a run of token characters to count as a secret. */
const HIGH_ENTROPY_MIN_LENGTH = 32;
const HIGH_ENTROPY_MIN_BITS = 4;

/**
 * A high-entropy token: >= 32 characters mixing upper case, lower case and digits, with at least
 * 4 bits of entropy per character. Hex digests (the `env:`/`script:` trigger fingerprints) have
 * no upper case and at most 4 bits per character, and paths or words have no such mix, so they
 * do not match; a random password or an API key of that length does.
 */
export function isHighEntropyToken(token: string): boolean {
  return (
    token.length >= HIGH_ENTROPY_MIN_LENGTH &&
    /[A-Z]/.test(token) &&
    /[a-z]/.test(token) &&
    /[0-9]/.test(token) &&
    entropyBitsPerChar(token) >= HIGH_ENTROPY_MIN_BITS
  );
}

function unquote(value: string): string {
  if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) {
    return value.slice(1, -1);
  }
  return value;
}

/** A literal credential value, as opposed to a reference (`$VAR`, `${VAR}`) or a pattern (`.*`). */
function isLiteralValue(value: string): boolean {
  const v = unquote(value);
  if (v.startsWith("$")) return false;
  return (v.match(/[A-Za-z0-9]/g) ?? []).length >= 4;
}

/** Secret-looking material in `text`: PEM private keys, AWS key ids, credential assignments, high-entropy tokens. */
export function findSecretMaterial(text: string): Finding[] {
  const findings: Finding[] = [];
  for (const m of text.matchAll(PEM_PRIVATE_KEY)) findings.push({ what: "a PEM private key", index: m.index ?? 0 });
  for (const m of text.matchAll(AWS_ACCESS_KEY_ID))
    findings.push({ what: "an AWS access key id", index: m.index ?? 0 });
  for (const m of text.matchAll(ASSIGNMENT)) {
    const [, name, value] = m;
    if (isSecretName(name) && isLiteralValue(value)) {
      findings.push({ what: `a ${name}= assignment with a literal value`, index: m.index ?? 0 });
    }
  }
  for (const m of text.matchAll(TOKEN_RUN)) {
    // A run may glue a token to neighbours (`KEY=token`, `host:token`): judge each piece too.
    const pieces = [m[0], ...m[0].split(/[=:,@]/)];
    if (pieces.some(isHighEntropyToken)) {
      findings.push({ what: `a high-entropy token of ${m[0].length} characters`, index: m.index ?? 0 });
    }
  }
  return findings.sort((a, b) => a.index - b.index);
}

/** Minimum length of a known secret value searched for verbatim; shorter ones match by accident. */
export const MIN_KNOWN_SECRET_LENGTH = 8;

/**
 * Parses the env file format the program writes (`KEY='value'` lines, see components/env-file.ts;
 * unquoted and double-quoted values are accepted too) into key/value pairs.
 */
export function parseEnvFile(content: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const rawLine of content.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    pairs.push([m[1], unquote(m[2])]);
  }
  return pairs;
}

/** Lines of a PEM/OpenSSH private key body long enough to identify it (any one of them leaking is a leak). */
export function privateKeyFragments(key: string): string[] {
  return key
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length >= 20 && !l.startsWith("-----"));
}
