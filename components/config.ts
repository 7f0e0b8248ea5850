/**
 * The one typed, validated view of the stack config. Everything the operator
 * can get wrong is checked here, all at once, before any resource exists: a
 * bad config fails `pulumi preview` with every problem listed, each naming its
 * key and how to fix it. Secret values are carried in `Sensitive` boxes so they
 * cannot end up in a message by accident.
 */
import * as path from "node:path";
import { AlphabetName, isAlphabetName, ALPHABETS } from "./alphabet";
import { keyProblem, valueProblem } from "./env-file";

export const PROJECT = "pms-secrets";

/** Secrets the operator supplies. DB_PASSWORD is required; the rest are recommended. */
export const REQUIRED_SUPPLIED_SECRETS = ["DB_PASSWORD"] as const;
export const RECOMMENDED_SUPPLIED_SECRETS = [
  "HUBTEL_CLIENT_ID",
  "HUBTEL_CLIENT_SECRET",
  "PAYSTACK_SECRET_KEY",
] as const;

export const DEFAULT_SERVICES = ["pms-backend", "celery-pms"] as const;
export const DEFAULT_GENERATED_LENGTH = 64;
export const MIN_SECRET_KEY_LENGTH = 50;
export const MIN_GENERATED_LENGTH = 32;
export const MAX_GENERATED_LENGTH = 512;

/** A value that must never be printed. `String(x)` and `JSON.stringify(x)` both give "[secret]". */
export class Sensitive {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return "[secret]";
  }
  toJSON(): string {
    return "[secret]";
  }
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return "[secret]";
  }
}

export interface HostSpec {
  /** Short name, used in resource names and messages: lower-case letters, digits and dashes. */
  name: string;
  /** DNS name or IP address sshd listens on. */
  address: string;
  /** sshd port. Default 22. */
  port: number;
  /** SSH login user. Default root; any other user needs passwordless `sudo -n`. */
  user: string;
  /** Server host key in authorized_keys form ("ssh-ed25519 AAAA..."). Required on prod. */
  hostKey?: string;
}

export interface AppSpec {
  /** Absolute path of the Django project on the hosts. */
  dir: string;
  /** Absolute path of the env file. Default `<dir>/.env.production`. */
  envFile: string;
  /** systemd services that read the env file, restarted in this order. */
  services: string[];
  /** URL checked from the host itself after the restart; must answer 2xx. */
  healthUrl?: string;
  /** Run before any restart under the new env as systemd would load it, e.g. `python3 manage.py check --deploy`. */
  checkCommand?: string;
  /** When set, the env file is 0640 root:<group> instead of 0600 root:root. */
  envFileGroup?: string;
  /** How long each restarted unit must stay active without restarting. Default 5. */
  stableSeconds: number;
  /** How long the health URL may take to answer 2xx after the restart. Default 30. */
  healthTimeoutSeconds: number;
}

export interface RotationKeepers {
  /** The stack-wide keeper (`pms-secrets:rotation`). */
  rotation: string;
  /** This secret's own keeper (`pms-secrets:rotate.<KEY>`). */
  rotate: string;
}

export interface GeneratedSecretSpec {
  /** Env key the value is written under. */
  key: string;
  length: number;
  alphabet: AlphabetName;
  keepers: RotationKeepers;
}

export interface StackSettings {
  project: string;
  stack: string;
  /** Prod rules apply: pinned host keys, DEBUG off, ALLOWED_HOSTS set. */
  isProd: boolean;
  hosts: HostSpec[];
  app: AppSpec;
  /** Plain (non-secret) settings written to the env file. */
  env: Record<string, string>;
  /** Names (not values) of the secrets the operator supplied. */
  suppliedSecretKeys: string[];
  generated: GeneratedSecretSpec[];
  rotation: string;
  rotate: Record<string, string>;
  secretName: string;
  kmsKeyId?: string;
  recoveryWindowInDays: number;
  requireHostKeys: boolean;
  ssh: { timeoutSeconds: number; attempts: number };
}

export interface ParsedConfig {
  settings: StackSettings;
  sshPrivateKey: Sensitive;
  suppliedSecrets: Record<string, Sensitive>;
  warnings: string[];
}

export class ConfigError extends Error {
  constructor(
    readonly stack: string,
    readonly problems: string[],
  ) {
    super(
      `Stack "${stack}" has ${problems.length} configuration problem${problems.length === 1 ? "" : "s"}; ` +
        `nothing was changed:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
    );
    this.name = "ConfigError";
  }
}

/** Raw config as Pulumi hands it to the program: full key ("pms-secrets:hosts") to string. */
export type RawConfig = Readonly<Record<string, string | undefined>>;

/** Every key of this project's namespace the program reads. Anything else is a typo. */
export const KNOWN_KEYS = [
  "hosts",
  "sshPrivateKey",
  "app",
  "env",
  "secrets",
  "generated",
  "rotation",
  "rotate",
  "secretName",
  "kmsKeyId",
  "recoveryWindowInDays",
  "requireHostKeys",
  "sshTimeoutSeconds",
  "sshAttempts",
] as const;
type KnownKey = (typeof KNOWN_KEYS)[number];

const HOST_NAME = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/;
const UNIX_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
const UNIT_NAME = /^[A-Za-z0-9:_.\\@-]+$/;
const HOST_KEY_TYPES = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "ssh-rsa",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
];

/** Why `line` is not one host key in authorized_keys form, or undefined when it is. */
export function hostKeyProblem(line: string): string | undefined {
  const fields = line.trim().split(/\s+/);
  if (fields.length >= 3 && HOST_KEY_TYPES.includes(fields[1]) && !HOST_KEY_TYPES.includes(fields[0])) {
    return "looks like a known_hosts line; drop the leading host name and keep `<type> <base64>`";
  }
  if (!HOST_KEY_TYPES.includes(fields[0])) {
    return `must start with a key type (${HOST_KEY_TYPES.slice(0, 3).join(", ")}, ...), as printed by ssh-keyscan`;
  }
  if (fields.length < 2 || !/^[A-Za-z0-9+/]+={0,2}$/.test(fields[1])) {
    return "must be `<type> <base64 key>`; the key part is missing or not base64";
  }
  // The blob starts with the key type again (RFC 4253 string): a truncated or pasted-wrong key fails here.
  const blob = Buffer.from(fields[1], "base64");
  const typeLength = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (typeLength < 0 || blob.length < 4 + typeLength || blob.subarray(4, 4 + typeLength).toString() !== fields[0]) {
    return `the base64 key does not encode a ${fields[0]} key (truncated or mismatched copy?)`;
  }
  return undefined;
}

/** A config scalar as text; structures as JSON (so a wrong shape shows in the message, not "[object Object]"). */
function scalar(v: unknown): string {
  return typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? String(v) : JSON.stringify(v);
}

function isTruthyFlag(value: string): boolean {
  return ["true", "1", "yes", "on"].includes(value.trim().toLowerCase());
}

/**
 * Parses and validates the raw config of `stack`. Throws ConfigError listing
 * every problem; returns warnings for what is allowed but unwise.
 */
export function parseStackConfig(raw: RawConfig, stack: string, secretKeys?: ReadonlySet<string>): ParsedConfig {
  const problems: string[] = [];
  const warnings: string[] = [];
  const full = (key: string): string => `${PROJECT}:${key}`;
  const problem = (key: string, what: string, fix: string): void => {
    problems.push(`${full(key)}: ${what}. Fix: ${fix}`);
  };

  for (const k of Object.keys(raw)) {
    if (!k.startsWith(`${PROJECT}:`)) continue;
    const short = k.slice(PROJECT.length + 1);
    if (!(KNOWN_KEYS as readonly string[]).includes(short)) {
      problem(short, "is not a setting of this program", `remove it, or use one of: ${KNOWN_KEYS.join(", ")}`);
    }
  }

  /** Reads a structured value; config set with --path arrives as JSON. */
  const json = (key: KnownKey): unknown => {
    const text = raw[full(key)];
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // A plain scalar set without --path: keep the string itself.
      return text;
    }
  };
  const text = (key: KnownKey): string | undefined => raw[full(key)];
  const int = (key: KnownKey, def: number, min: number, max: number, fix: string): number => {
    const v = text(key);
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      problem(key, `${JSON.stringify(v)} is not a whole number from ${min} to ${max}`, fix);
      return def;
    }
    return n;
  };
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);

  const isProdStack = stack === "prod";
  const requireHostKeysRaw = text("requireHostKeys");
  if (requireHostKeysRaw !== undefined && !["true", "false"].includes(requireHostKeysRaw)) {
    problem("requireHostKeys", `${JSON.stringify(requireHostKeysRaw)} is not true or false`, "set it to true or false");
  }
  const requireHostKeys = isProdStack || requireHostKeysRaw === "true";

  // --- secret-bearing keys must be stored encrypted -------------------------------------------
  for (const key of ["sshPrivateKey", "secrets"] as const) {
    if (secretKeys && raw[full(key)] !== undefined && !secretKeys.has(full(key))) {
      problem(
        key,
        "is stored in plaintext in the stack file",
        `remove it and set it again with --secret, e.g. \`pulumi config set --secret ${key === "secrets" ? "--path 'secrets.DB_PASSWORD'" : "sshPrivateKey < key"}\`, then rotate the leaked value`,
      );
    }
  }

  // --- hosts ---------------------------------------------------------------------------------
  const hosts: HostSpec[] = [];
  const rawHosts = json("hosts");
  if (rawHosts === undefined || (Array.isArray(rawHosts) && rawHosts.length === 0)) {
    problem(
      "hosts",
      "no hosts are configured",
      "add at least one, e.g. `pulumi config set --path 'hosts[0].name' web1` and `--path 'hosts[0].address' 203.0.113.10`",
    );
  } else if (!Array.isArray(rawHosts)) {
    problem(
      "hosts",
      "must be a list of {name, address, port?, user?, hostKey?}",
      "set it with --path 'hosts[0].name' ...",
    );
  } else {
    const seenNames = new Set<string>();
    const seenTargets = new Set<string>();
    rawHosts.forEach((h: unknown, i: number) => {
      const at = `hosts[${i}]`;
      if (!isObject(h)) {
        problem(
          at,
          "must be an object {name, address, port?, user?, hostKey?}",
          `set --path '${at}.name' and '${at}.address'`,
        );
        return;
      }
      const name = typeof h.name === "string" ? h.name : "";
      if (!HOST_NAME.test(name)) {
        problem(
          `${at}.name`,
          name === "" ? "is missing" : `${JSON.stringify(name)} is not a valid host name`,
          "use 1-40 lower-case letters, digits and dashes, e.g. web1",
        );
      } else if (seenNames.has(name)) {
        problem(`${at}.name`, `duplicate host name ${JSON.stringify(name)}`, "give every host a unique name");
      }
      seenNames.add(name);
      const address = typeof h.address === "string" ? h.address.trim() : "";
      if (address === "" || /\s/.test(address)) {
        problem(
          `${at}.address`,
          address === "" ? "is empty" : "contains whitespace",
          "set the DNS name or IP address the host's sshd listens on",
        );
      }
      let port = 22;
      if (h.port !== undefined) {
        const p = Number(h.port);
        if (!Number.isInteger(p) || p < 1 || p > 65535) {
          problem(
            `${at}.port`,
            `${JSON.stringify(h.port)} is not a TCP port`,
            "use a number from 1 to 65535 (default 22)",
          );
        } else port = p;
      }
      const user = h.user === undefined ? "root" : scalar(h.user);
      if (!UNIX_NAME.test(user)) {
        problem(
          `${at}.user`,
          `${JSON.stringify(user)} is not a valid login name`,
          "use the SSH login user (default root)",
        );
      }
      const target = `${address}:${port}`;
      if (address !== "" && seenTargets.has(target)) {
        problem(`${at}.address`, `${target} is already the target of another host`, "list every host once");
      }
      seenTargets.add(target);
      let hostKey: string | undefined;
      if (h.hostKey !== undefined && h.hostKey !== "") {
        const hk = scalar(h.hostKey).trim();
        const why = hostKeyProblem(hk);
        if (why)
          problem(
            `${at}.hostKey`,
            why,
            `run \`ssh-keyscan -t ed25519 ${address || "<address>"}\`, verify the key out of band, and paste "ssh-ed25519 AAAA..."`,
          );
        hostKey = hk.split(/\s+/).slice(0, 2).join(" ");
      } else if (requireHostKeys) {
        problem(
          `${at}.hostKey`,
          `is missing; ${isProdStack ? "prod" : "this stack (requireHostKeys)"} requires every host key to be pinned`,
          `run \`ssh-keyscan -t ed25519 ${address || "<address>"}\`, verify the fingerprint out of band, then \`pulumi config set --path '${at}.hostKey' 'ssh-ed25519 AAAA...'\``,
        );
      } else {
        warnings.push(
          `${full(`${at}.hostKey`)} is not set: the SSH server key of ${name || at} is not checked. Pin it before going to production.`,
        );
      }
      hosts.push({ name, address, port, user, hostKey });
    });
  }

  // --- SSH key and connection limits -----------------------------------------------------------
  const sshKeyText = text("sshPrivateKey");
  if (sshKeyText === undefined || sshKeyText.trim() === "") {
    problem("sshPrivateKey", "is missing", "`pulumi config set --secret sshPrivateKey < ~/.ssh/pms_deploy_ed25519`");
  } else if (!/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(sshKeyText)) {
    problem(
      "sshPrivateKey",
      "is not a PEM/OpenSSH private key",
      "set the private key file's full contents: `pulumi config set --secret sshPrivateKey < KEYFILE`",
    );
  }
  const ssh = {
    timeoutSeconds: int("sshTimeoutSeconds", 10, 1, 300, "seconds per SSH connection attempt, 1-300 (default 10)"),
    attempts: int("sshAttempts", 3, 1, 20, "SSH connection attempts before giving up, 1-20 (default 3)"),
  };

  // --- app -----------------------------------------------------------------------------------
  const rawApp = json("app");
  const appObj = isObject(rawApp) ? rawApp : {};
  if (!isObject(rawApp)) {
    problem(
      "app",
      rawApp === undefined ? "is missing" : "must be an object",
      "set at least `pulumi config set --path 'app.dir' /srv/pms-backend`",
    );
  }
  const absPath = (key: string, v: unknown, fallback: string): string => {
    if (typeof v !== "string" || v === "") {
      problem(key, "is missing", "set an absolute path, e.g. /srv/pms-backend");
      return fallback;
    }
    if (!path.posix.isAbsolute(v) || path.posix.normalize(v) !== v.replace(/\/+$/, "") || /[\s'"\\]/.test(v)) {
      problem(
        key,
        `${JSON.stringify(v)} is not a normalized absolute path`,
        "use an absolute path without .., //, quotes or spaces, e.g. /srv/pms-backend",
      );
      return fallback;
    }
    return v.replace(/\/+$/, "") || "/";
  };
  const dir = isObject(rawApp) ? absPath("app.dir", appObj.dir, "/invalid") : "/invalid";
  const envFile =
    appObj.envFile === undefined
      ? path.posix.join(dir, ".env.production")
      : absPath("app.envFile", appObj.envFile, "/invalid");
  let services: string[] = [...DEFAULT_SERVICES];
  if (appObj.services !== undefined) {
    if (!Array.isArray(appObj.services) || appObj.services.length === 0) {
      problem(
        "app.services",
        "must be a non-empty list of systemd service names",
        `e.g. ["${DEFAULT_SERVICES.join('", "')}"] (restarted in that order)`,
      );
    } else {
      services = appObj.services.map((s: unknown, i: number) => {
        const name = scalar(s).replace(/\.service$/, "");
        if (typeof s !== "string" || !UNIT_NAME.test(name) || name.length > 200) {
          problem(
            `app.services[${i}]`,
            `${JSON.stringify(s)} is not a valid systemd unit name`,
            "use the unit name as `systemctl status` shows it, e.g. pms-backend",
          );
        }
        return name;
      });
      const dup = services.find((s, i) => services.indexOf(s) !== i);
      if (dup) problem("app.services", `${dup} is listed twice`, "list each service once, in restart order");
    }
  }
  let healthUrl: string | undefined;
  if (appObj.healthUrl !== undefined) {
    const u = scalar(appObj.healthUrl);
    let ok = false;
    try {
      const parsed = new URL(u);
      ok = (parsed.protocol === "http:" || parsed.protocol === "https:") && !/[\s'"\\]/.test(u);
    } catch {
      ok = false;
    }
    if (!ok)
      problem(
        "app.healthUrl",
        `${JSON.stringify(u)} is not an http(s) URL`,
        "use a URL the host itself can reach, e.g. http://127.0.0.1:8000/health/",
      );
    healthUrl = u;
  }
  let checkCommand: string | undefined;
  if (appObj.checkCommand !== undefined) {
    checkCommand = scalar(appObj.checkCommand);
    if (checkCommand.trim() === "" || /[\r\n\0]/.test(checkCommand)) {
      problem(
        "app.checkCommand",
        "must be one non-empty line",
        "e.g. `/usr/bin/python3 manage.py check --deploy` (run in app.dir as the service user)",
      );
    }
  }
  let envFileGroup: string | undefined;
  if (appObj.envFileGroup !== undefined) {
    envFileGroup = scalar(appObj.envFileGroup);
    if (!UNIX_NAME.test(envFileGroup))
      problem(
        "app.envFileGroup",
        `${JSON.stringify(envFileGroup)} is not a valid group name`,
        "use an existing group on the hosts, or remove it for 0600 root:root",
      );
  }
  const boundedInt = (key: string, v: unknown, def: number, min: number, max: number): number => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      problem(
        key,
        `${JSON.stringify(v)} is not a whole number from ${min} to ${max}`,
        `set seconds from ${min} to ${max} (default ${def})`,
      );
      return def;
    }
    return n;
  };
  const app: AppSpec = {
    dir,
    envFile,
    services,
    healthUrl,
    checkCommand,
    envFileGroup,
    stableSeconds: boundedInt("app.stableSeconds", appObj.stableSeconds, 5, 1, 300),
    healthTimeoutSeconds: boundedInt("app.healthTimeoutSeconds", appObj.healthTimeoutSeconds, 30, 1, 600),
  };
  for (const k of Object.keys(appObj)) {
    if (
      ![
        "dir",
        "envFile",
        "services",
        "healthUrl",
        "checkCommand",
        "envFileGroup",
        "stableSeconds",
        "healthTimeoutSeconds",
      ].includes(k)
    ) {
      problem(
        `app.${k}`,
        "is not a setting of app",
        "use dir, envFile, services, healthUrl, checkCommand, envFileGroup, stableSeconds, healthTimeoutSeconds",
      );
    }
  }

  // --- generated secrets and their keepers ------------------------------------------------------
  const rotation = text("rotation") ?? "";
  if (/[\r\n]/.test(rotation)) problem("rotation", "must be one line", "use a date, e.g. 2026-11-25");
  const rawRotate = json("rotate");
  const rotate: Record<string, string> = {};
  if (rawRotate !== undefined && !isObject(rawRotate)) {
    problem(
      "rotate",
      "must be a map from a generated secret's env key to its keeper",
      "e.g. `pulumi config set --path 'rotate.SECRET_KEY' 2026-11-25`",
    );
  } else if (rawRotate) {
    for (const [k, v] of Object.entries(rawRotate)) rotate[k] = scalar(v);
  }
  const rawGenerated = json("generated");
  const generatedMap: Record<string, unknown> = { SECRET_KEY: {} };
  if (rawGenerated !== undefined) {
    if (!isObject(rawGenerated)) {
      problem(
        "generated",
        "must be a map from env key to {length?, alphabet?}",
        "e.g. `pulumi config set --path 'generated.JWT_SIGNING_KEY.length' 64`",
      );
    } else Object.assign(generatedMap, rawGenerated);
  }
  const generated: GeneratedSecretSpec[] = [];
  for (const [key, specRaw] of Object.entries(generatedMap)) {
    const at = `generated.${key}`;
    const kp = keyProblem(key);
    if (kp) problem(at, `the key ${kp}`, "rename it to a valid name, e.g. JWT_SIGNING_KEY");
    const spec = isObject(specRaw) ? specRaw : {};
    if (specRaw !== null && specRaw !== undefined && !isObject(specRaw))
      problem(at, "must be an object {length?, alphabet?}", "use {} for the defaults");
    const min = key === "SECRET_KEY" ? MIN_SECRET_KEY_LENGTH : MIN_GENERATED_LENGTH;
    let length = DEFAULT_GENERATED_LENGTH;
    if (spec.length !== undefined) {
      const n = Number(spec.length);
      if (!Number.isInteger(n) || n < min || n > MAX_GENERATED_LENGTH) {
        problem(
          `${at}.length`,
          `${JSON.stringify(spec.length)} is out of range`,
          `use ${min} to ${MAX_GENERATED_LENGTH}${key === "SECRET_KEY" ? " (Django requires at least 50)" : ""}; default ${DEFAULT_GENERATED_LENGTH}`,
        );
      } else length = n;
    }
    let alphabet: AlphabetName = "safe";
    if (spec.alphabet !== undefined) {
      const a = scalar(spec.alphabet);
      if (isAlphabetName(a)) alphabet = a;
      else
        problem(
          `${at}.alphabet`,
          `${JSON.stringify(a)} is not a known alphabet`,
          `use one of: ${Object.keys(ALPHABETS).join(", ")}`,
        );
    }
    for (const k of Object.keys(spec)) {
      if (k !== "length" && k !== "alphabet")
        problem(`${at}.${k}`, "is not a setting of a generated secret", "use length and alphabet");
    }
    generated.push({ key, length, alphabet, keepers: { rotation, rotate: rotate[key] ?? "" } });
  }
  for (const k of Object.keys(rotate)) {
    if (!(k in generatedMap)) {
      problem(
        `rotate.${k}`,
        `${k} is not a generated secret, so there is nothing to rotate`,
        `use one of: ${Object.keys(generatedMap).join(", ")}; supplied secrets are changed with \`pulumi config set --secret --path 'secrets.${k}'\``,
      );
    }
  }

  // --- supplied secrets ----------------------------------------------------------------------
  const suppliedSecrets: Record<string, Sensitive> = {};
  const rawSecrets = json("secrets");
  if (rawSecrets !== undefined && !isObject(rawSecrets)) {
    problem(
      "secrets",
      "must be a map from env key to secret value",
      "`pulumi config set --secret --path 'secrets.DB_PASSWORD' ...`",
    );
  } else if (rawSecrets) {
    for (const [key, v] of Object.entries(rawSecrets)) {
      const at = `secrets.${key}`;
      const kp = keyProblem(key);
      if (kp) problem(at, `the key ${kp}`, "rename it");
      if (typeof v !== "string" || v === "") {
        problem(at, "must be a non-empty string", `\`pulumi config set --secret --path '${at}' ...\``);
        continue;
      }
      const vp = valueProblem(v);
      if (vp)
        problem(
          at,
          `the value ${vp}`,
          "choose a value without ' \\ newline or NUL (the value itself is not shown here)",
        );
      if (key in generatedMap)
        problem(at, `${key} is generated by the program`, `remove ${full(at)}; rotate it with the keeper instead`);
      suppliedSecrets[key] = new Sensitive(v);
    }
  }
  for (const key of REQUIRED_SUPPLIED_SECRETS) {
    if (!(key in suppliedSecrets) && !problems.some((p) => p.startsWith(full(`secrets.${key}`)))) {
      problem(
        `secrets.${key}`,
        "is missing (the database already has it; it is delivered, not generated)",
        `\`pulumi config set --secret --path 'secrets.${key}' <current password>\``,
      );
    }
  }
  for (const key of RECOMMENDED_SUPPLIED_SECRETS) {
    if (!(key in suppliedSecrets)) {
      warnings.push(
        `${full(`secrets.${key}`)} is not set: the app starts without it, but the features that use it will fail. Set it with \`pulumi config set --secret --path 'secrets.${key}' ...\`.`,
      );
    }
  }

  // --- plain env settings ----------------------------------------------------------------------
  const env: Record<string, string> = {};
  const rawEnv = json("env");
  if (rawEnv !== undefined && !isObject(rawEnv)) {
    problem("env", "must be a map of plain settings", "e.g. `pulumi config set --path 'env.DEBUG' False`");
  } else if (rawEnv) {
    for (const [key, v] of Object.entries(rawEnv)) {
      const at = `env.${key}`;
      const kp = keyProblem(key);
      if (kp) problem(at, `the key ${kp}`, "rename it to a valid variable name");
      if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") {
        problem(at, "must be a string, number or boolean", "quote the value");
        continue;
      }
      // Django settings read "True"/"False"; a YAML boolean is written that way.
      const value = typeof v === "boolean" ? (v ? "True" : "False") : String(v);
      const vp = valueProblem(value);
      if (vp) problem(at, `the value ${vp}`, "remove those characters");
      if (key in generatedMap) problem(at, `${key} is generated by the program`, `remove ${full(at)}`);
      else if (key in suppliedSecrets)
        problem(
          at,
          `${key} is also in ${full("secrets")}`,
          "keep it in one place: secrets if it is secret, env if not",
        );
      else if (/PASSWORD|SECRET|TOKEN|PRIVATE/i.test(key)) {
        problem(
          at,
          `${key} looks like a secret but is stored in plaintext`,
          `move it: \`pulumi config rm --path '${at}'\` then \`pulumi config set --secret --path 'secrets.${key}' ...\``,
        );
      }
      env[key] = value;
    }
  }
  if (isProdStack) {
    if (env.DEBUG !== undefined && isTruthyFlag(env.DEBUG)) {
      problem(
        "env.DEBUG",
        "is on for prod (Django would show stack traces and settings to visitors)",
        "`pulumi config set --path 'env.DEBUG' False`",
      );
    }
    const allowed = (env.ALLOWED_HOSTS ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    if (allowed.length === 0) {
      problem(
        "env.ALLOWED_HOSTS",
        "is empty for prod (Django refuses every request when DEBUG is off)",
        "`pulumi config set --path 'env.ALLOWED_HOSTS' api.example.com,www.example.com`",
      );
    }
  }

  // --- secret store --------------------------------------------------------------------------
  const secretName = text("secretName") || `pms-backend/${stack}`;
  if (!/^[A-Za-z0-9/_+=.@-]{1,512}$/.test(secretName)) {
    problem(
      "secretName",
      `${JSON.stringify(secretName)} is not a valid Secrets Manager name`,
      "use letters, digits and /_+=.@- (default pms-backend/<stack>)",
    );
  }
  const kmsKeyId = text("kmsKeyId") || undefined;
  const recoveryWindowInDays = int(
    "recoveryWindowInDays",
    isProdStack ? 30 : 7,
    7,
    30,
    "use 7 to 30 days (default 30 on prod, 7 elsewhere)",
  );

  if (problems.length > 0) throw new ConfigError(stack, problems);
  return {
    settings: {
      project: PROJECT,
      stack,
      isProd: isProdStack,
      hosts,
      app,
      env,
      suppliedSecretKeys: Object.keys(suppliedSecrets).sort(),
      generated,
      rotation,
      rotate,
      secretName,
      kmsKeyId,
      recoveryWindowInDays,
      requireHostKeys,
      ssh,
    },
    sshPrivateKey: new Sensitive(sshKeyText ?? ""),
    suppliedSecrets,
    warnings,
  };
}
