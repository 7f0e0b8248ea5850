/** `app`: where the Django app lives on the hosts, which services read the env file, how a rollout is checked. */
import * as path from "node:path";
import type { Problems } from "./problems";
import { ConfigObject, flag, isObject, scalar, unknownKeys, wholeNumber } from "./read";
import { UNIX_NAME } from "./hosts";

export const DEFAULT_SERVICES = ["pms-backend", "celery-pms"] as const;
const UNMANAGED_KEYS = ["refuse", "keep", "drop"] as const;
export type UnmanagedKeys = (typeof UNMANAGED_KEYS)[number];
const FAIL_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
export const DEFAULT_BACKUP_GENERATIONS = 3;

export interface AppSpec {
  /** Absolute path of the Django project on the hosts. */
  dir: string;
  /** Absolute path of the env file. Default `<dir>/.env.production`. */
  envFile: string;
  /** systemd services that read the env file, restarted in this order. */
  services: string[];
  /** URLs checked from the host itself after the first service restarts; each must answer 2xx. */
  healthUrls: string[];
  /** Host header of the health requests (default: the first ALLOWED_HOSTS name); set only with a URL. */
  healthHost?: string;
  /** CA bundle on the host for https health URLs. */
  healthCaFile?: string;
  /** Skip certificate checks of https health URLs (explicit; warned on production). */
  healthInsecure: boolean;
  /** Run before any restart under the new env as the first service's unit runs, e.g. `manage.py check --deploy`. */
  checkCommand?: string;
  /** When set, the env file is 0640 root:<group> instead of 0600 root:root. */
  envFileGroup?: string;
  /** What the rollout does with keys in the host's env file that this program does not manage. */
  unmanagedKeys: UnmanagedKeys;
  /** How many previous env files the host keeps. */
  backupGenerations: number;
  /** How long each restarted unit must stay active without restarting. Default 5. */
  stableSeconds: number;
  /** How long the health URLs may take to answer 2xx after the restart. Default 30. */
  healthTimeoutSeconds: number;
}

export interface AppRules {
  production: boolean;
  because: string;
  /** ALLOWED_HOSTS entries (empty when unknown): the default Host header of the health check. */
  allowedHosts: readonly string[];
}

const APP_KEYS = [
  "dir",
  "envFile",
  "services",
  "healthUrl",
  "healthUrls",
  "healthHost",
  "healthCaFile",
  "healthInsecure",
  "checkCommand",
  "checkFailLevel",
  "envFileGroup",
  "unmanagedKeys",
  "backupGenerations",
  "stableSeconds",
  "healthTimeoutSeconds",
];
const UNIT_NAME = /^[A-Za-z0-9:_.\\@-]+$/;

function absolutePath(problems: Problems, key: string, v: unknown, example: string): string | undefined {
  if (typeof v !== "string" || v === "") {
    problems.add(key, "is missing", `set an absolute path, e.g. ${example}`);
    return undefined;
  }
  if (
    !path.posix.isAbsolute(v) ||
    path.posix.normalize(v).replace(/\/+$/, "") !== v.replace(/\/+$/, "") ||
    /[\s'"\\]/.test(v)
  ) {
    problems.add(
      key,
      `${JSON.stringify(v)} is not a normalized absolute path`,
      `use an absolute path without .., //, quotes or spaces, e.g. ${example}`,
    );
    return undefined;
  }
  return v.replace(/\/+$/, "") || "/";
}

function parseEnvFilePath(problems: Problems, app: ConfigObject, dir: string): string {
  if (app.envFile === undefined) return path.posix.join(dir, ".env.production");
  const example = path.posix.join(dir, ".env.production");
  const envFile = absolutePath(problems, "app.envFile", app.envFile, example);
  if (envFile !== undefined && (envFile === dir || envFile === "/" || scalar(app.envFile).endsWith("/"))) {
    problems.add(
      "app.envFile",
      `${JSON.stringify(app.envFile)} is a directory, not a file`,
      `name the file, e.g. ${example}`,
    );
  }
  return envFile ?? example;
}

function parseServices(problems: Problems, value: unknown): string[] {
  if (value === undefined) return [...DEFAULT_SERVICES];
  if (!Array.isArray(value) || value.length === 0) {
    problems.add(
      "app.services",
      "must be a non-empty list of systemd service names",
      `e.g. ["${DEFAULT_SERVICES.join('", "')}"] (restarted in that order)`,
    );
    return [...DEFAULT_SERVICES];
  }
  const services = value.map((s: unknown, i: number) => {
    const name = scalar(s).replace(/\.service$/, "");
    if (typeof s !== "string" || !UNIT_NAME.test(name) || name.length > 200) {
      problems.add(
        `app.services[${i}]`,
        `${JSON.stringify(s)} is not a valid systemd unit name`,
        "use the unit name as `systemctl status` shows it, e.g. pms-backend",
      );
    }
    return name;
  });
  const dup = services.find((s, i) => services.indexOf(s) !== i);
  if (dup) problems.add("app.services", `${dup} is listed twice`, "list each service once, in restart order");
  return services;
}

function isHttpUrl(u: string): boolean {
  try {
    const parsed = new URL(u);
    return (
      (parsed.protocol === "http:" || parsed.protocol === "https:") && !/[\s'"\\]/.test(u) && parsed.username === ""
    );
  } catch {
    return false;
  }
}

function parseHealthUrls(problems: Problems, app: ConfigObject): string[] {
  if (app.healthUrl !== undefined && app.healthUrls !== undefined) {
    problems.add(
      "app.healthUrls",
      "is set together with app.healthUrl",
      "list every URL in app.healthUrls and remove app.healthUrl",
    );
    return [];
  }
  const [key, list] =
    app.healthUrls !== undefined
      ? ["app.healthUrls", app.healthUrls]
      : ["app.healthUrl", app.healthUrl === undefined ? [] : [app.healthUrl]];
  if (!Array.isArray(list)) {
    problems.add(
      key,
      "must be a list of http(s) URLs",
      "e.g. `pulumi config set --path 'app.healthUrls[0]' http://127.0.0.1:8000/health/`",
    );
    return [];
  }
  const urls = list.map(scalar);
  urls.forEach((u, i) => {
    if (!isHttpUrl(u)) {
      problems.add(
        key === "app.healthUrl" ? key : `${key}[${i}]`,
        `${JSON.stringify(u)} is not an http(s) URL without credentials`,
        "use a URL the host itself can reach, e.g. http://127.0.0.1:8000/health/",
      );
    }
  });
  return urls;
}

/** Django's host validation (`django.http.request.validate_host`) for one Host value, port dropped. */
function djangoAllows(allowedHosts: readonly string[], host: string): boolean {
  const name = host.replace(/:\d+$/, "").replace(/\.$/, "").toLowerCase();
  return allowedHosts.some((pattern) => {
    const p = pattern.toLowerCase();
    return p === "*" || p === name || (p.startsWith(".") && (name.endsWith(p) || name === p.slice(1)));
  });
}

function parseHealthHost(problems: Problems, rules: AppRules, value: unknown): string | undefined {
  if (value === undefined) {
    const first = rules.allowedHosts[0];
    return first === undefined || first === "*" ? undefined : first.replace(/^\./, "");
  }
  const host = scalar(value);
  const fix = "set the public name the site answers to, one of env.ALLOWED_HOSTS (default: the first one)";
  if (!/^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/.test(host)) {
    problems.add("app.healthHost", `${JSON.stringify(host)} is not a host name`, fix);
  } else if (rules.allowedHosts.length > 0 && !djangoAllows(rules.allowedHosts, host)) {
    problems.add(
      "app.healthHost",
      `${host} is not in env.ALLOWED_HOSTS, so Django would answer 400 and every rollout would roll back`,
      fix,
    );
  }
  return host;
}

function parseCheckCommand(problems: Problems, app: ConfigObject): string | undefined {
  if (app.checkCommand === undefined) {
    if (app.checkFailLevel !== undefined)
      problems.add(
        "app.checkFailLevel",
        "is set without app.checkCommand",
        "set app.checkCommand to a `manage.py check` command, or remove app.checkFailLevel",
      );
    return undefined;
  }
  const command = scalar(app.checkCommand);
  if (command.trim() === "" || /[\r\n\0]/.test(command)) {
    problems.add(
      "app.checkCommand",
      "must be one non-empty line",
      "e.g. `/srv/pms-backend/venv/bin/python manage.py check --deploy` (run in app.dir as the first service runs)",
    );
    return command;
  }
  if (app.checkFailLevel === undefined) return command;
  const level = scalar(app.checkFailLevel).toUpperCase();
  if (!FAIL_LEVELS.includes(level)) {
    problems.add(
      "app.checkFailLevel",
      `${JSON.stringify(app.checkFailLevel)} is not a Django message level`,
      `use one of ${FAIL_LEVELS.join(", ")} (WARNING fails on the warnings of check --deploy)`,
    );
  } else if (!/manage\.py\s+check\b/.test(command) || /--fail-level/.test(command)) {
    problems.add(
      "app.checkFailLevel",
      "needs app.checkCommand to be a `manage.py check` command without its own --fail-level",
      "set the level in one place",
    );
  } else {
    return `${command} --fail-level ${level}`;
  }
  return command;
}

function parseHealthTls(
  problems: Problems,
  rules: AppRules,
  app: ConfigObject,
  urls: readonly string[],
): Pick<AppSpec, "healthCaFile" | "healthInsecure"> {
  const healthCaFile =
    app.healthCaFile === undefined
      ? undefined
      : absolutePath(problems, "app.healthCaFile", app.healthCaFile, "/etc/ssl/certs/ca-certificates.crt");
  const healthInsecure = flag(problems, "app.healthInsecure", app.healthInsecure, false);
  const https = urls.some((u) => u.startsWith("https:"));
  if ((healthCaFile !== undefined || healthInsecure) && !https) {
    problems.add(
      healthCaFile !== undefined ? "app.healthCaFile" : "app.healthInsecure",
      "is set but no health URL is https",
      "remove it, or use an https health URL",
    );
  } else if (healthCaFile !== undefined && healthInsecure) {
    problems.add(
      "app.healthInsecure",
      "is set together with app.healthCaFile",
      "keep one: the CA file checks the certificate, insecure does not",
    );
  } else if (healthInsecure && rules.production) {
    problems.warn(
      "app.healthInsecure",
      `is on for ${rules.because}: the health check does not verify the server certificate.`,
    );
  }
  return { healthCaFile, healthInsecure };
}

/** Parses `app`; `rules.allowedHosts` gives the health check's default Host header. */
export function parseApp(problems: Problems, value: unknown, rules: AppRules): AppSpec {
  if (!isObject(value)) {
    problems.add(
      "app",
      value === undefined ? "is missing" : "must be an object",
      "set at least `pulumi config set --path 'app.dir' /srv/pms-backend`",
    );
  }
  const app = isObject(value) ? value : {};
  unknownKeys(problems, "app", app, APP_KEYS);
  const dir =
    (isObject(value) ? absolutePath(problems, "app.dir", app.dir, "/srv/pms-backend") : undefined) ?? "/invalid";
  const healthUrls = parseHealthUrls(problems, app);
  const checkCommand = parseCheckCommand(problems, app);
  if (healthUrls.length === 0 && checkCommand === undefined) {
    problems.warn(
      "app",
      "has neither healthUrl(s) nor checkCommand: a rollout that breaks the app is only caught if a unit stops. Set at least one.",
    );
  }
  if (healthUrls.length === 0 && app.healthHost !== undefined) {
    problems.add("app.healthHost", "is set without a health URL", "set app.healthUrl(s), or remove app.healthHost");
  }
  let envFileGroup: string | undefined;
  if (app.envFileGroup !== undefined) {
    envFileGroup = scalar(app.envFileGroup);
    if (!UNIX_NAME.test(envFileGroup)) {
      problems.add(
        "app.envFileGroup",
        `${JSON.stringify(envFileGroup)} is not a valid group name`,
        "use an existing group on the hosts, or remove it for 0600 root:root",
      );
    }
  }
  const unmanagedKeys = scalar(app.unmanagedKeys ?? "refuse");
  if (!(UNMANAGED_KEYS as readonly string[]).includes(unmanagedKeys)) {
    problems.add(
      "app.unmanagedKeys",
      `${JSON.stringify(unmanagedKeys)} is not refuse, keep or drop`,
      "refuse (default) stops the rollout when the host's env file has keys this stack does not manage; keep carries them over; drop removes them",
    );
  }
  return {
    dir,
    envFile: parseEnvFilePath(problems, app, dir),
    services: parseServices(problems, app.services),
    healthUrls,
    healthHost: healthUrls.length > 0 ? parseHealthHost(problems, rules, app.healthHost) : undefined,
    ...parseHealthTls(problems, rules, app, healthUrls),
    checkCommand,
    envFileGroup,
    unmanagedKeys: unmanagedKeys as UnmanagedKeys,
    backupGenerations: wholeNumber(problems, "app.backupGenerations", app.backupGenerations, {
      min: 1,
      max: 20,
      default: DEFAULT_BACKUP_GENERATIONS,
      unit: "previous env files kept on each host",
    }),
    stableSeconds: wholeNumber(problems, "app.stableSeconds", app.stableSeconds, {
      min: 1,
      max: 300,
      default: 5,
      unit: "seconds",
    }),
    healthTimeoutSeconds: wholeNumber(problems, "app.healthTimeoutSeconds", app.healthTimeoutSeconds, {
      min: 1,
      max: 600,
      default: 30,
      unit: "seconds",
    }),
  };
}
