/** `app`: where the Django app lives on the hosts, which services read the env file, how a rollout is checked. */
import { agentRange } from "../agent-options";
import type { Problems } from "./problems";
import { HealthRules, HealthSettings, parseHealth } from "./health";
import { absolutePath, ConfigObject, isObject, NumberRange, scalar, unknownKeys, wholeNumber } from "./read";
import { UNIX_NAME } from "./hosts";
import { LoginProbe, parseLoginProbe } from "./login-probe";

const DEFAULT_SERVICES = ["pms-backend", "celery-pms"] as const;
export const UNMANAGED_KEYS = ["refuse", "keep", "drop"] as const;
export type UnmanagedKeys = (typeof UNMANAGED_KEYS)[number];
export const FAIL_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
/**
 * Where the env file goes unless app.envFile says otherwise: a directory only root can write
 * (the rollout creates it root 0755). Not the app directory: its owner, the app user, could swap
 * the file for a link to any root-only file, which systemd reads as root (issue 19).
 */
export const DEFAULT_ENV_FILE = "/etc/pms-backend/.env.production";

export interface AppSpec extends HealthSettings {
  /** Absolute path of the Django project on the hosts. */
  dir: string;
  /** Absolute path of the env file. Default DEFAULT_ENV_FILE (`/etc/pms-backend/.env.production`). */
  envFile: string;
  /** systemd services that read the env file, restarted in this order. */
  services: string[];
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
  /**
   * The socket unit that activates the first service (docs/ZERO-DOWNTIME.md). When set, a rollout
   * refuses to touch a host where it is not active or does not activate that service, and watches
   * it after the restart.
   */
  socketUnit?: string;
  /** The old guide's "tested login", by the host after the restart (login-probe.ts). */
  loginProbe?: LoginProbe;
}

export type AppRules = HealthRules;

/** Every key of `app` the parser reads (docs/CONFIG.md has a row for each; test/config-doc.test.ts). */
export const APP_KEYS = [
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
  "socketUnit",
  "loginProbe",
];
const UNIT_NAME = /^[A-Za-z0-9:_.\\@-]+$/;

function parseEnvFilePath(problems: Problems, app: ConfigObject, dir: string): string {
  if (app.envFile === undefined) return DEFAULT_ENV_FILE;
  const example = DEFAULT_ENV_FILE;
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

// Ranges and defaults are the host agent's (agent/options.json): the config accepts what the agent does.
const BACKUPS: NumberRange = { ...agentRange("--backups"), unit: "how many previous env files each host keeps" };
const STABLE_SECONDS: NumberRange = { ...agentRange("--stable-seconds"), unit: "the seconds each unit must stay up" };
const HEALTH_TIMEOUT: NumberRange = {
  ...agentRange("--health-timeout"),
  unit: "the seconds the health URLs may take",
};
/** The whole-number keys of `app` and their ranges (docs/CONFIG.md quotes them; test/config-doc.test.ts). */
export const APP_RANGES: Readonly<Record<string, NumberRange>> = {
  backupGenerations: BACKUPS,
  stableSeconds: STABLE_SECONDS,
  healthTimeoutSeconds: HEALTH_TIMEOUT,
};

function parseEnvFileGroup(problems: Problems, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  const group = scalar(value);
  if (!UNIX_NAME.test(group)) {
    problems.add(
      "app.envFileGroup",
      `${JSON.stringify(group)} is not a valid group name`,
      "use an existing group on the hosts, or remove it for 0600 root:root",
    );
  }
  return group;
}

function parseUnmanagedKeys(problems: Problems, value: unknown): UnmanagedKeys {
  const mode = scalar(value ?? "refuse");
  if ((UNMANAGED_KEYS as readonly string[]).includes(mode)) return mode as UnmanagedKeys;
  problems.add(
    "app.unmanagedKeys",
    `${JSON.stringify(mode)} is not refuse, keep or drop`,
    "refuse (default) stops the rollout when the host's env file has keys this stack does not manage; keep carries them over; drop removes them",
  );
  return "refuse";
}

function parseSocketUnit(problems: Problems, value: unknown, services: readonly string[]): string | undefined {
  if (value === undefined) return undefined;
  const unit = scalar(value);
  const example = `${services[0] ?? DEFAULT_SERVICES[0]}.socket`;
  if (typeof value !== "string" || !/^[A-Za-z0-9_][A-Za-z0-9:_.\\@-]*\.socket$/.test(unit) || unit.length > 200) {
    problems.add(
      "app.socketUnit",
      `${JSON.stringify(value)} is not a socket unit name`,
      `name the socket unit that activates ${services[0] ?? "the first service"}, e.g. ${example} (docs/ZERO-DOWNTIME.md), or remove app.socketUnit`,
    );
    return undefined;
  }
  return unit;
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
  const health = parseHealth(problems, app, rules);
  const checkCommand = parseCheckCommand(problems, app);
  if (health.healthUrls.length === 0 && checkCommand === undefined) {
    problems.warn(
      "app",
      "has neither healthUrl(s) nor checkCommand: a rollout that breaks the app is only caught if a unit stops. Set at least one.",
    );
  }
  const services = parseServices(problems, app.services);
  const socketUnit = parseSocketUnit(problems, app.socketUnit, services);
  const loginProbe = parseLoginProbe(problems, app.loginProbe, health);
  return {
    dir,
    envFile: parseEnvFilePath(problems, app, dir),
    services,
    ...health,
    checkCommand,
    envFileGroup: parseEnvFileGroup(problems, app.envFileGroup),
    unmanagedKeys: parseUnmanagedKeys(problems, app.unmanagedKeys),
    backupGenerations: wholeNumber(problems, "app.backupGenerations", app.backupGenerations, BACKUPS),
    stableSeconds: wholeNumber(problems, "app.stableSeconds", app.stableSeconds, STABLE_SECONDS),
    healthTimeoutSeconds: wholeNumber(problems, "app.healthTimeoutSeconds", app.healthTimeoutSeconds, HEALTH_TIMEOUT),
    ...(socketUnit === undefined ? {} : { socketUnit }),
    ...(loginProbe === undefined ? {} : { loginProbe }),
  };
}
