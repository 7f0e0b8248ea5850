/**
 * Rotation on a schedule (issue 20): the bump the `scheduled-rotation` workflow commits to a pull
 * request, so a routine rotation is a reviewed `pulumi preview` instead of a calendar reminder.
 *
 *   SCHEDULED_ROTATION_DAYS=N tsx components/scheduled-rotation.ts [--stack-file Pulumi.prod.yaml]
 *     [--keys "SECRET_KEY ..."] [--policy-config policy/config.json] [--today YYYY-MM-DD]
 *
 * For each listed generated key (default SECRET_KEY) whose newest keeper (`rotation` or
 * `rotate.<KEY>`) is N days old or older, it sets `rotate.<KEY>` to today's date (`.2`, `.3` ...
 * when that date is already the keeper) in the stack file, editing only those lines so comments
 * and layout stay. N is the repository variable SCHEDULED_ROTATION_DAYS (the workflow passes it
 * in the environment), a whole number of days from 1 to the rotation-keeper-age policy's
 * `maxKeeperAgeDays` in policy/config.json: the schedule opens its pull request no later than the
 * day the policy starts warning, so the two agree. Unset, not a whole number, or above the
 * policy's maximum: the bump fails, naming the variable and the fix, and changes nothing.
 * A key whose keeper is `emergency-...` is due like any other (its date counts): the bump ends
 * the emergency mode with a routine rotation.
 *
 * Prints `due=KEY,KEY` (empty when nothing is due) and `title=...` for $GITHUB_OUTPUT. Changes
 * nothing when nothing is due. Exits 1 with every problem listed (key, what, fix).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import yaml from "js-yaml";
import { parseKeeperDate } from "../policy/policies/keeper-age";

const DAY_MS = 24 * 60 * 60 * 1000;
const PROJECT = "pms-secrets";
const KEY_NAME = /^[A-Z][A-Z0-9_]*$/;

export class ScheduledRotationError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`scheduled rotation: nothing was changed:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ScheduledRotationError";
  }
}

/** The keeper-age policy's maxKeeperAgeDays (policy/config.json): the most N may be. */
export function rotationIntervalDays(policyConfigText: string): number {
  const config = JSON.parse(policyConfigText) as Record<string, Record<string, unknown> | undefined>;
  const days = config["rotation-keeper-age"]?.maxKeeperAgeDays;
  if (typeof days !== "number" || !Number.isInteger(days) || days < 1) {
    throw new ScheduledRotationError([
      `policy/config.json: rotation-keeper-age.maxKeeperAgeDays is ${JSON.stringify(days)}, not a whole number of days; set it (e.g. 90): it bounds the schedule's interval too`,
    ]);
  }
  return days;
}

/** Where the workflow's interval comes from: a repository variable, passed in the environment. */
export const DAYS_VARIABLE = "SCHEDULED_ROTATION_DAYS";

/**
 * N from the repository variable: a whole number of days, 1 to `policyMaxDays` (the keeper-age
 * policy's maxKeeperAgeDays). Throws ScheduledRotationError naming the variable and the fix.
 */
export function scheduledIntervalDays(variable: string | undefined, policyMaxDays: number): number {
  const where =
    "(repository Settings > Secrets and variables > Actions > Variables, or `gh variable set " +
    `${DAYS_VARIABLE} --body ${policyMaxDays}\`)`;
  const text = (variable ?? "").trim();
  if (text === "") {
    throw new ScheduledRotationError([
      `${DAYS_VARIABLE} is not set: the schedule does not know every how many days to rotate. Set the repository variable to a whole number of days from 1 to ${policyMaxDays} (the keeper-age policy's maxKeeperAgeDays in policy/config.json) ${where}`,
    ]);
  }
  if (!/^[0-9]+$/.test(text) || Number(text) < 1) {
    throw new ScheduledRotationError([
      `${DAYS_VARIABLE} is ${JSON.stringify(variable)}, not a whole number of days of at least 1. Set it to a number from 1 to ${policyMaxDays}, e.g. ${policyMaxDays} ${where}`,
    ]);
  }
  const days = Number(text);
  if (days > policyMaxDays) {
    throw new ScheduledRotationError([
      `${DAYS_VARIABLE} is ${days}, more than the keeper-age policy's maxKeeperAgeDays ${policyMaxDays} (policy/config.json): the policy would warn about keys the schedule has not rotated yet. Set the variable to ${policyMaxDays} or less ${where}, or raise maxKeeperAgeDays in policy/config.json first`,
    ]);
  }
  return days;
}

/** The list of keys from the workflow's variable: blank-, comma- or newline-separated; default SECRET_KEY. */
export function parseKeyList(text: string | undefined): string[] {
  const keys = (text ?? "").split(/[\s,]+/).filter((k) => k !== "");
  return keys.length === 0 ? ["SECRET_KEY"] : [...new Set(keys)];
}

interface StackKeepers {
  generated: string[];
  rotation: string;
  rotate: Record<string, string>;
}

function stackKeepers(stackText: string): StackKeepers {
  const doc = yaml.load(stackText) as { config?: Record<string, unknown> } | undefined;
  const config = doc?.config ?? {};
  const generated = config[`${PROJECT}:generated`];
  const rotate = config[`${PROJECT}:rotate`];
  const asText = (v: unknown): string =>
    typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? String(v) : "";
  return {
    generated: generated && typeof generated === "object" ? Object.keys(generated) : [],
    rotation: asText(config[`${PROJECT}:rotation`]),
    rotate:
      rotate && typeof rotate === "object"
        ? Object.fromEntries(Object.entries(rotate).map(([k, v]) => [k, asText(v)]))
        : {},
  };
}

/** Age in whole days of the newest dated keeper of `key`, or undefined when none is a date. */
export function keeperAgeDays(keepers: StackKeepers, key: string, today: number): number | undefined {
  const times = [keepers.rotation, keepers.rotate[key] ?? ""]
    .map((v) => parseKeeperDate(v))
    .filter((t): t is number => t !== undefined);
  if (times.length === 0) return undefined;
  return Math.floor((today - Math.max(...times)) / DAY_MS);
}

/** The keeper value for today: the date, or the date with the next counter when it is taken. */
export function nextKeeper(current: string, todayIso: string): string {
  const m = new RegExp(`^${todayIso}(?:\\.(\\d+))?$`).exec(current.trim());
  if (!m) return todayIso;
  return `${todayIso}.${m[1] === undefined ? 2 : Number(m[1]) + 1}`;
}

/**
 * Sets `pms-secrets:rotate.<key>` in the stack file text, touching only that entry (or adding the
 * `pms-secrets:rotate:` map at the end of `config:`). Values are quoted so YAML keeps them text.
 */
export function setRotateKeeper(stackText: string, key: string, value: string): string {
  const lines = stackText.split("\n");
  const header = lines.findIndex((l) => /^ {2}pms-secrets:rotate:\s*(#.*)?$/.test(l));
  const entry = `    ${key}: "${value}"`;
  if (header < 0) {
    // Append the map at the end of the config block (the file's last non-empty line belongs to it).
    let end = lines.length;
    while (end > 0 && lines[end - 1].trim() === "") end--;
    lines.splice(end, 0, "  pms-secrets:rotate:", entry);
    return lines.join("\n");
  }
  let i = header + 1;
  for (; i < lines.length && (/^ {4}\S/.test(lines[i]) || /^\s*#/.test(lines[i])); i++) {
    if (new RegExp(`^ {4}${key}:`).test(lines[i])) {
      lines[i] = entry;
      return lines.join("\n");
    }
  }
  lines.splice(i, 0, entry);
  return lines.join("\n");
}

export interface BumpResult {
  /** The keys whose keeper was bumped (empty: nothing due, text unchanged). */
  due: string[];
  text: string;
  /** Per listed key: its age in days (undefined: no dated keeper, so due). */
  ages: Record<string, number | undefined>;
}

/** Bumps every listed key that is due; refuses keys the stack does not generate. */
export function bumpDueKeepers(
  stackText: string,
  keys: readonly string[],
  intervalDays: number,
  today: Date,
): BumpResult {
  const keepers = stackKeepers(stackText);
  const problems: string[] = [];
  for (const key of keys) {
    if (!KEY_NAME.test(key)) {
      problems.push(
        `SCHEDULED_ROTATION_KEYS: ${JSON.stringify(key)} is not an env key name; list generated keys, e.g. "SECRET_KEY JWT_SIGNING_KEY"`,
      );
    } else if (!keepers.generated.includes(key)) {
      problems.push(
        `SCHEDULED_ROTATION_KEYS: ${key} is not under ${PROJECT}:generated in the stack file, so no keeper rotates it; remove it from the repository variable or generate it (\`pulumi config set --path 'generated.${key}' '{}'\`)`,
      );
    }
  }
  if (problems.length > 0) throw new ScheduledRotationError(problems);
  const todayIso = today.toISOString().slice(0, 10);
  const now = Date.parse(`${todayIso}T00:00:00Z`);
  const ages: Record<string, number | undefined> = {};
  const due: string[] = [];
  let text = stackText;
  for (const key of keys) {
    const age = keeperAgeDays(keepers, key, now);
    ages[key] = age;
    if (age !== undefined && age < intervalDays) continue;
    due.push(key);
    text = setRotateKeeper(text, key, nextKeeper(keepers.rotate[key] ?? "", todayIso));
  }
  // The edit must say exactly what was meant: re-read it.
  const after = stackKeepers(text);
  for (const key of due) {
    if (after.rotate[key] !== nextKeeper(keepers.rotate[key] ?? "", todayIso)) {
      throw new ScheduledRotationError([
        `${PROJECT}:rotate.${key}: the edited stack file does not read back as intended`,
      ]);
    }
  }
  return { due, text, ages };
}

export interface CliOptions {
  stackFile: string;
  keys: string[];
  /** The repository variable's value as the workflow passes it (SCHEDULED_ROTATION_DAYS). */
  days: string | undefined;
  policyConfig: string;
  today: Date;
}

export function parseCliArgs(argv: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): CliOptions {
  const options: CliOptions = {
    stackFile: path.join(cwd, "Pulumi.prod.yaml"),
    keys: parseKeyList(env.SCHEDULED_ROTATION_KEYS),
    days: env[DAYS_VARIABLE],
    policyConfig: path.join(cwd, "policy", "config.json"),
    today: new Date(),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (v === undefined) throw new ScheduledRotationError([`${a} needs a value`]);
    if (a === "--stack-file") options.stackFile = path.resolve(cwd, v);
    else if (a === "--keys") options.keys = parseKeyList(v);
    else if (a === "--policy-config") options.policyConfig = path.resolve(cwd, v);
    else if (a === "--today" && parseKeeperDate(v) !== undefined && /^\d{4}-\d{2}-\d{2}$/.test(v))
      options.today = new Date(`${v}T00:00:00Z`);
    else
      throw new ScheduledRotationError([
        `unknown argument ${JSON.stringify(a)} ${JSON.stringify(v)}; use [--stack-file F] [--keys "K ..."] [--policy-config F] [--today YYYY-MM-DD]`,
      ]);
    i++;
  }
  return options;
}

/** Runs the bump; returns the $GITHUB_OUTPUT lines. */
export function runScheduledRotation(options: CliOptions): string {
  const interval = scheduledIntervalDays(
    options.days,
    rotationIntervalDays(fs.readFileSync(options.policyConfig, "utf8")),
  );
  const before = fs.readFileSync(options.stackFile, "utf8");
  const r = bumpDueKeepers(before, options.keys, interval, options.today);
  if (r.due.length > 0) fs.writeFileSync(options.stackFile, r.text);
  const todayIso = options.today.toISOString().slice(0, 10);
  const title = r.due.length > 0 ? `Rotate ${r.due.join(", ")} (scheduled, every ${interval} days): ${todayIso}` : "";
  return `due=${r.due.join(",")}\ninterval=${interval}\ntitle=${title}\n`;
}

if (require.main === module) {
  try {
    process.stdout.write(runScheduledRotation(parseCliArgs(process.argv.slice(2), process.cwd(), process.env)));
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exitCode = 1;
  }
}
