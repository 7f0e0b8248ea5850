/**
 * The reviewed plan (issue 21): the pull request's preview saves its update plan (`pulumi preview
 * --save-plan`, the operations the reviewers saw), and the deploy of the merged commit runs
 * `pulumi up --skip-preview --plan <that plan>`, so it spends no second program run on a preview
 * and the engine refuses, resource by resource and before that resource's step, any operation the
 * plan does not hold (Pulumi 3.248: pkg/resource/deploy/step_generator.go, "violates plan").
 *
 * The plan is used only when it was made from exactly what is deployed:
 *   - the same stack;
 *   - the same source tree (`git rev-parse HEAD^{tree}`: the preview's merge commit and the merged
 *     commit on main have the same tree when main did not move in between; config, stack files and
 *     code are all in it);
 *   - the same stack state: the SHA-256 of `pulumi stack export` (the stored checkpoint; every
 *     update, a failed one too, rewrites it; previews do not). The backend's update "version" cannot
 *     serve: a DIY backend (file://, s3://) records 0 for every update.
 *   - the plan file the record names (SHA-256), holding no secret in plain text (a plan saved with
 *     --show-secrets has "plaintext" envelopes; ours are encrypted by the stack's secrets provider).
 * Otherwise the deploy does not use it and says why: it previews afresh and constrains its update
 * to that preview instead (docs/ROTATING.md, "Deploying a reviewed preview").
 *
 *   tsx components/reviewed-plan.ts record --stack S --plan FILE --state-before DIGEST --out FILE
 *   tsx components/reviewed-plan.ts state --stack S                  (prints the state digest)
 *   tsx components/reviewed-plan.ts check --stack S --dir DIR         (prints plan=PATH or plan=)
 * `pulumi` and `git` are run from PATH (PULUMI names another CLI), in the current directory.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

export const PLAN_FILE = "update-plan.json";
export const RECORD_FILE = "reviewed-plan.json";
export const RECORD_FORMAT = 1;

/** What the preview job records next to the plan (no secret: names and digests only). */
export interface PlanRecord {
  format: number;
  stack: string;
  /** `git rev-parse HEAD^{tree}` of the previewed checkout. */
  tree: string;
  /** The previewed commit (for people; the tree is what is compared). */
  commit: string;
  /** SHA-256 of `pulumi stack export` when the preview started (and, checked, when it ended). */
  state: string;
  /** SHA-256 of the plan file. */
  planSha256: string;
}

/** What the deploy job finds in its own checkout and stack. */
export interface DeployFacts {
  stack: string;
  tree: string;
  state: string;
  /** The plan file's bytes. */
  plan: Buffer;
}

export const sha256 = (data: Buffer | string): string => createHash("sha256").update(data).digest("hex");

/**
 * Places in a plan where a secret is not encrypted: every secret envelope
 * ({"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", ...}) must carry
 * `ciphertext`, and every secure config value `secure`. Returns the JSON paths that do not.
 */
export function plaintextSecrets(plan: unknown): string[] {
  const SIG = "4dabf18193072939515e22adb298388d";
  const out: string[] = [];
  const walk = (v: unknown, at: string): void => {
    if (Array.isArray(v)) {
      v.forEach((x, i) => walk(x, `${at}[${i}]`));
      return;
    }
    if (v === null || typeof v !== "object") return;
    const o = v as Record<string, unknown>;
    if (SIG in o && (typeof o.ciphertext !== "string" || "plaintext" in o || "value" in o)) out.push(at);
    else if ("plaintext" in o) out.push(at);
    for (const [k, x] of Object.entries(o)) walk(x, `${at}.${k}`);
  };
  walk(plan, "$");
  return out;
}

/**
 * Why the reviewed plan must not be used for this deploy, one line per reason (empty: use it).
 * Each line says what differs and what the deploy does instead.
 */
export function planMismatches(record: unknown, facts: DeployFacts): string[] {
  const out: string[] = [];
  const r = record as Partial<PlanRecord> | null;
  if (r === null || typeof r !== "object" || r.format !== RECORD_FORMAT) {
    return [`the plan's record (${RECORD_FILE}) is not format ${RECORD_FORMAT}`];
  }
  if (r.stack !== facts.stack) out.push(`the plan is for stack ${String(r.stack)}, this deploy is ${facts.stack}`);
  if (r.tree !== facts.tree) {
    out.push(
      `the preview ran on source tree ${String(r.tree)}, this deploy is ${facts.tree} (main moved after the preview, or the preview is of another commit)`,
    );
  }
  if (r.state !== facts.state) {
    out.push(
      `the stack's state changed since the preview (another update ran: a deploy, a scheduled rotation or a manual up)`,
    );
  }
  if (r.planSha256 !== sha256(facts.plan))
    out.push(`the plan file is not the one the preview recorded (SHA-256 differs)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(facts.plan.toString("utf8"));
  } catch {
    out.push(`the plan file is not JSON`);
    return out;
  }
  const plain = plaintextSecrets(parsed);
  if (plain.length > 0)
    out.push(`the plan holds secrets in plain text at ${plain.join(", ")} (saved with --show-secrets?)`);
  return out;
}

// --- the command line the workflows run ----------------------------------------------------------

function pulumi(args: string[]): string {
  return execFileSync(process.env.PULUMI ?? "pulumi", args, {
    encoding: "utf8",
    maxBuffer: 512 * 1024 * 1024,
    stdio: ["ignore", "pipe", "inherit"],
  });
}

/** SHA-256 of the stack's checkpoint as `pulumi stack export` prints it (secrets stay encrypted). */
export function stateDigest(stack: string): string {
  return sha256(pulumi(["stack", "export", "--stack", stack]));
}

export function sourceTree(): string {
  return execFileSync("git", ["rev-parse", "HEAD^{tree}"], { encoding: "utf8" }).trim();
}

function args(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--") || argv[i + 1] === undefined) throw new Error(`usage: bad argument ${argv[i]}`);
    out[argv[i].slice(2)] = argv[i + 1];
  }
  return out;
}

function need(a: Record<string, string>, key: string): string {
  const v = a[key];
  if (!v) throw new Error(`usage: --${key} is required`);
  return v;
}

/** The deploy's decision, for $GITHUB_OUTPUT: `plan=<absolute path>` or `plan=` (preview afresh). */
export function check(stack: string, dir: string): { plan: string; reasons: string[] } {
  const planPath = path.resolve(dir, PLAN_FILE);
  const recordPath = path.resolve(dir, RECORD_FILE);
  if (!fs.existsSync(planPath) || !fs.existsSync(recordPath)) {
    return { plan: "", reasons: [`no reviewed plan found (no preview artifact of this commit's pull request)`] };
  }
  let record: unknown;
  try {
    record = JSON.parse(fs.readFileSync(recordPath, "utf8"));
  } catch {
    record = null;
  }
  const reasons = planMismatches(record, {
    stack,
    tree: sourceTree(),
    state: stateDigest(stack),
    plan: fs.readFileSync(planPath),
  });
  return { plan: reasons.length === 0 ? planPath : "", reasons };
}

function main(argv: string[]): number {
  const [cmd, ...rest] = argv;
  const a = args(rest);
  if (cmd === "state") {
    process.stdout.write(`${stateDigest(need(a, "stack"))}\n`);
    return 0;
  }
  if (cmd === "record") {
    const stack = need(a, "stack");
    const planPath = need(a, "plan");
    const before = need(a, "state-before");
    const after = stateDigest(stack);
    if (after !== before) {
      process.stderr.write(
        `error: stack ${stack} was updated while this preview ran, so its plan may not match the state it will meet. ` +
          `Nothing was saved; re-run this preview.\n`,
      );
      return 1;
    }
    const plan = fs.readFileSync(planPath);
    const plain = plaintextSecrets(JSON.parse(plan.toString("utf8")));
    if (plain.length > 0) {
      fs.rmSync(planPath);
      process.stderr.write(
        `error: the update plan holds secrets in plain text at ${plain.join(", ")}; it was deleted. ` +
          `Save the plan without --show-secrets.\n`,
      );
      return 1;
    }
    const record: PlanRecord = {
      format: RECORD_FORMAT,
      stack,
      tree: sourceTree(),
      commit: execFileSync("git", ["rev-parse", "HEAD"], { encoding: "utf8" }).trim(),
      state: after,
      planSha256: sha256(plan),
    };
    fs.writeFileSync(need(a, "out"), `${JSON.stringify(record, null, 2)}\n`);
    process.stdout.write(`recorded the plan of stack ${stack} for tree ${record.tree}\n`);
    return 0;
  }
  if (cmd === "check") {
    const stack = need(a, "stack");
    const { plan, reasons } = check(stack, need(a, "dir"));
    if (plan) {
      process.stdout.write(`Deploying ${stack} with the reviewed plan (no second preview): ${plan}\n`);
    } else {
      process.stdout.write(
        `::notice title=No reviewed plan for ${stack}::the deploy previews afresh and constrains its update to that preview, because ${reasons.join("; ")}\n`,
      );
    }
    if (process.env.GITHUB_OUTPUT) fs.appendFileSync(process.env.GITHUB_OUTPUT, `plan=${plan}\n`);
    else process.stdout.write(`plan=${plan}\n`);
    return 0;
  }
  process.stderr.write("usage: reviewed-plan.ts state|record|check --stack S ...\n");
  return 2;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  }
}
