/**
 * The GitHub Actions workflows and the IAM roles they assume (issues 4 and 13).
 *
 * - Every workflow passes the real validator (@action-validator/cli, the GitHub workflow schema).
 * - Who can see what: each property is a check function returning its violations, run on the
 *   shipped files and on deliberately broken copies built here, so a later edit cannot quietly
 *   hand prod secrets to unreviewed pull request code, and the checks are shown to fail.
 * - The IAM policy documents in docs/iam/ are least privilege and bound to the environments the
 *   workflows use.
 * - Supply chain and keys (issue 19): every action pinned by full commit SHA with its tag in a
 *   comment, the Pulumi CLI installed at one exact version in every job, every preview (dev too)
 *   behind an approval, and the deploy key only ever loaded into an ssh-agent, never into config.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import yaml from "js-yaml";

const root = join(__dirname, "..");
const workflowDir = join(root, ".github", "workflows");
const iamDir = join(root, "docs", "iam");
const validator = join(root, "node_modules", ".bin", "action-validator");

// --- the rules -------------------------------------------------------------------------------

/**
 * Environments whose protection rules require a maintainer's approval before a job starts.
 * GitHub settings cannot be read from the repository: docs/IAM.md tells the admin to set them
 * and a test below keeps that table and this list together.
 */
const APPROVAL_ENVIRONMENTS = ["dev-preview", "production-preview", "production"] as const;
/** The approval environments whose reviewers may let a job hold prod secrets and roles. */
const PROD_APPROVAL_ENVIRONMENTS = ["production-preview", "production"] as const;
/**
 * The Pulumi CLI every job installs: exactly this version (a range such as `^3` lets whoever
 * publishes the next release run in jobs holding deploy credentials). Same line as the SDK.
 */
const PULUMI_CLI_VERSION = "3.248.0";
/** `uses: owner/repo[/path]@<full commit SHA> # v<tag>` and nothing else on the line. */
const PINNED_USES = /^\s*(?:-\s+)?uses:\s+[A-Za-z0-9_.-]+\/[A-Za-z0-9_./-]+@[0-9a-f]{40} # v\d+(?:\.\d+){0,2}\s*$/;
/** The only repository checks fork pull requests must fail (forks get no secrets nor OIDC). */
const SAME_REPO_ONLY = "github.event.pull_request.head.repo.full_name == github.repository";
/** Role variable -> IAM files and the environment its trust policy names. */
const ROLES = {
  AWS_PREVIEW_ROLE_ARN_DEV: { file: "preview-dev", stack: "dev", environment: "dev-preview", preview: true },
  AWS_PREVIEW_ROLE_ARN_PROD: { file: "preview-prod", stack: "prod", environment: "production-preview", preview: true },
  AWS_DEPLOY_ROLE_ARN_DEV: { file: "deploy-dev", stack: "dev", environment: "dev", preview: false },
  AWS_DEPLOY_ROLE_ARN_PROD: { file: "deploy-prod", stack: "prod", environment: "production", preview: false },
} as const;
type RoleVar = keyof typeof ROLES;
/**
 * Secrets that name no stack, each allowed in one environment only, in a job that touches neither
 * AWS nor Pulumi, in a workflow no pull request triggers: the scheduled rotation's GitHub App key
 * (it opens the bump's pull request; issue 20).
 */
const BOT_SECRETS: Record<string, string> = { ROTATION_APP_PRIVATE_KEY: "rotation-bot" };

// --- workflow model ----------------------------------------------------------------------------

type Permissions = string | Record<string, string>;
interface Step {
  id?: string;
  name?: string;
  if?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, unknown>;
}
interface Job {
  name?: string;
  if?: string;
  environment?: string | { name: string };
  permissions?: Permissions;
  concurrency?: { group: string; "cancel-in-progress": boolean } | string;
  needs?: string | string[];
  env?: Record<string, unknown>;
  steps: Step[];
}
interface Workflow {
  on: string | string[] | Record<string, unknown>;
  permissions?: Permissions;
  env?: Record<string, unknown>;
  jobs: Record<string, Job>;
}

const files = readdirSync(workflowDir).filter((f) => /\.ya?ml$/.test(f));
const text = (file: string): string => readFileSync(join(workflowDir, file), "utf8");
const load = (file: string): Workflow => yaml.load(text(file)) as Workflow;
const clone = <T>(v: T): T => structuredClone(v);

const events = (wf: Workflow): string[] =>
  typeof wf.on === "string" ? [wf.on] : Array.isArray(wf.on) ? wf.on : Object.keys(wf.on ?? {});
const runsOnPullRequests = (wf: Workflow): boolean =>
  events(wf).some((e) => e === "pull_request" || e === "pull_request_target");
const environmentName = (job: Job): string | undefined =>
  typeof job.environment === "string" ? job.environment : job.environment?.name;
const needsApproval = (job: Job): boolean =>
  (APPROVAL_ENVIRONMENTS as readonly string[]).includes(environmentName(job) ?? "");
const needsProdApproval = (job: Job): boolean =>
  (PROD_APPROVAL_ENVIRONMENTS as readonly string[]).includes(environmentName(job) ?? "");
const pulumiSteps = (job: Job): Step[] =>
  job.steps.filter((s) => s.uses?.startsWith("pulumi/actions@") && s.with?.command);
const pulumiActionSteps = (job: Job): Step[] => job.steps.filter((s) => s.uses?.startsWith("pulumi/actions@"));
const awsSteps = (job: Job): Step[] =>
  job.steps.filter((s) => s.uses?.startsWith("aws-actions/configure-aws-credentials@"));
/** The job's `pulumi up` step (a deploy job also has a fallback preview: docs/ROTATING.md). */
const upStep = (job: Job): Step | undefined => pulumiSteps(job).find((s) => s.with?.command === "up");
/** A pull request's preview job: it previews and never runs `up`. */
const isPreview = (job: Job): boolean =>
  pulumiSteps(job).some((s) => s.with?.command === "preview") && upStep(job) === undefined;
const comments = (job: Job): boolean => pulumiSteps(job).some((s) => s.with?.["comment-on-pr"] === true);

/** Every string anywhere inside a value (keys excluded). */
function strings(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (value && typeof value === "object") return Object.values(value).flatMap(strings);
  return [];
}
const refs = (value: unknown, context: "secrets" | "vars"): string[] => [
  ...new Set(
    strings(value).flatMap((s) => [...s.matchAll(new RegExp(`\\b${context}\\.([A-Za-z0-9_]+)`, "g"))].map((m) => m[1])),
  ),
];
const jobsOf = (wf: Workflow): [string, Job][] => Object.entries(wf.jobs);
const permissionMap = (p: Permissions | undefined): Record<string, string> | undefined =>
  typeof p === "object" ? p : undefined;

// --- the checks: each returns the violations it finds ------------------------------------------

/** `pull_request_target` runs with the base repository's secrets and token: it must never run PR code. */
function pullRequestTargetViolations(wf: Workflow): string[] {
  if (!events(wf).includes("pull_request_target")) return [];
  const out: string[] = [];
  for (const [name, job] of jobsOf(wf)) {
    for (const s of job.steps) {
      const ref = strings(s.with ?? {}).join(" ");
      if (
        s.uses?.startsWith("actions/checkout@") &&
        /pull_request\.head|head_ref|refs\/pull\/|merge_commit_sha/.test(ref)
      ) {
        out.push(`${name}: pull_request_target checks out the pull request's code (${ref})`);
      }
    }
  }
  return out;
}

/** Which jobs may see which secrets and roles. */
function secretViolations(wf: Workflow): string[] {
  const out: string[] = [];
  if (strings(wf).some((s) => /secrets\s*\[|toJSON\(\s*secrets\s*\)/.test(s))) {
    out.push("secrets are referenced only as secrets.NAME (no secrets[...], no toJSON(secrets))");
  }
  for (const key of refs(wf.env ?? {}, "secrets")) out.push(`workflow env exposes secrets.${key} to every job`);
  for (const [name, job] of jobsOf(wf)) {
    const secrets = refs(job, "secrets");
    const vars = refs(job, "vars");
    for (const key of secrets) {
      if (key in BOT_SECRETS) {
        if (environmentName(job) !== BOT_SECRETS[key])
          out.push(`${name}: secrets.${key} outside the \`${BOT_SECRETS[key]}\` environment`);
        if (awsSteps(job).length > 0 || pulumiSteps(job).length > 0)
          out.push(`${name}: secrets.${key} in a job with AWS or Pulumi`);
        if (runsOnPullRequests(wf)) out.push(`${name}: secrets.${key} in a workflow pull requests run`);
        continue;
      }
      if (!/_(DEV|PROD)$/.test(key))
        out.push(`${name}: secrets.${key} is named for no stack (end it in _DEV or _PROD)`);
      if (key.endsWith("_PROD") && !needsProdApproval(job)) {
        out.push(`${name}: secrets.${key} in a job without an approval environment`);
      }
      if (!environmentName(job)) out.push(`${name}: secrets.${key} in a job without an environment`);
    }
    for (const key of refs(job.env ?? {}, "secrets")) out.push(`${name}: job env exposes secrets.${key} to every step`);
    for (const key of vars.filter((v): v is RoleVar => v in ROLES)) {
      if (ROLES[key].stack === "prod" && !needsProdApproval(job)) {
        out.push(`${name}: vars.${key} (a prod role) in a job without an approval environment`);
      }
    }
    if (strings(job).some((s) => /sshPrivateKey/.test(s))) {
      out.push(
        `${name}: sets sshPrivateKey (a key given to the program is stored in the state; load it into ssh-agent)`,
      );
    }
    for (const step of job.steps) {
      for (const key of refs(step, "secrets").filter((k) => /^SSH_PRIVATE_KEY_/.test(k))) {
        if (!/\bssh-add\b/.test(step.run ?? "") || step.uses !== undefined || /\bpulumi\b/.test(step.run ?? "")) {
          out.push(`${name}: secrets.${key} goes to a step that does not only ssh-add it into an agent`);
        }
      }
    }
    if (isPreview(job)) {
      if ((secrets.length > 0 || awsSteps(job).length > 0) && !needsApproval(job)) {
        out.push(`${name}: a preview job (unreviewed code) gets credentials without an approval environment`);
      }
      for (const key of secrets.filter((k) => /SSH/.test(k))) out.push(`${name}: a preview job gets secrets.${key}`);
      for (const key of vars.filter((v) => /DEPLOY/.test(v))) out.push(`${name}: a preview job assumes vars.${key}`);
    }
    if (runsOnPullRequests(wf)) {
      if ((secrets.length > 0 || awsSteps(job).length > 0) && !(job.if ?? "").includes(SAME_REPO_ONLY)) {
        out.push(`${name}: runs for fork pull requests (if: ${job.if ?? "none"})`);
      }
      if (!isPreview(job) && (secrets.length > 0 || awsSteps(job).length > 0)) {
        out.push(`${name}: a pull request job with credentials that is not a preview`);
      }
    }
  }
  return out;
}

/** Nothing by default; OIDC only where a role is assumed; PR write only where the preview is commented. */
function permissionViolations(wf: Workflow): string[] {
  const out: string[] = [];
  const top = permissionMap(wf.permissions);
  if (!top || Object.keys(top).length > 0)
    out.push(`workflow permissions are ${JSON.stringify(wf.permissions)}, not {}`);
  for (const [name, job] of jobsOf(wf)) {
    const p = permissionMap(job.permissions);
    if (!p) {
      out.push(`${name}: permissions are ${JSON.stringify(job.permissions)}, not a list of scopes`);
      continue;
    }
    const aws = awsSteps(job).length > 0;
    if ((p["id-token"] === "write") !== aws)
      out.push(`${name}: id-token: ${p["id-token"]} but ${aws ? "" : "no "}role`);
    if ((p["pull-requests"] === "write") !== comments(job)) {
      out.push(`${name}: pull-requests: ${p["pull-requests"]} but ${comments(job) ? "" : "no "}PR comment`);
    }
    for (const [scope, level] of Object.entries(p)) {
      if (level === "write" && scope !== "id-token" && scope !== "pull-requests") out.push(`${name}: ${scope}: write`);
    }
  }
  return out;
}

/** No token in .git/config for the code to find; no credential before `npm ci` runs install scripts. */
function checkoutViolations(wf: Workflow): string[] {
  const out: string[] = [];
  for (const [name, job] of jobsOf(wf)) {
    for (const s of job.steps.filter((x) => x.uses?.startsWith("actions/checkout@"))) {
      if (s.with?.["persist-credentials"] !== false) out.push(`${name}: checkout persists the token`);
    }
    const npm = job.steps.findIndex((s) => s.run?.trim() === "npm ci");
    const aws = job.steps.findIndex((s) => s.uses?.startsWith("aws-actions/configure-aws-credentials@"));
    if (aws >= 0 && npm > aws) out.push(`${name}: npm ci runs with AWS credentials in the job`);
  }
  return out;
}

/** Previews: one per PR and stack, superseded by a newer push. Ups: one per stack, never cancelled. */
function concurrencyViolations(wf: Workflow): string[] {
  const out: string[] = [];
  for (const [name, job] of jobsOf(wf)) {
    const steps = pulumiSteps(job);
    if (steps.length === 0) continue;
    const c = job.concurrency;
    if (!c || typeof c !== "object") {
      out.push(`${name}: no concurrency block`);
      continue;
    }
    const stack = String(steps[0].with?.["stack-name"]);
    if (!c.group.endsWith(`-${stack}`)) out.push(`${name}: group ${c.group} does not end with the stack ${stack}`);
    if (isPreview(job)) {
      if (!c.group.includes("github.event.pull_request.number")) out.push(`${name}: group is not per pull request`);
      if (c["cancel-in-progress"] !== true) out.push(`${name}: a stale preview is not cancelled`);
    } else if (c["cancel-in-progress"] !== false) {
      out.push(`${name}: a running up can be cancelled`);
    }
  }
  return out;
}

/** Every pulumi/actions install is the one exact CLI version, set on the job's first pulumi/actions step. */
function cliVersionViolations(wf: Workflow): string[] {
  const out: string[] = [];
  for (const [name, job] of jobsOf(wf)) {
    const steps = pulumiActionSteps(job);
    if (steps.length === 0) continue;
    if (steps[0].with?.["pulumi-version"] === undefined) {
      out.push(`${name}: the first pulumi/actions step installs no pinned CLI (pulumi-version)`);
    }
    for (const st of steps) {
      if (st.with?.["pulumi-version-file"] !== undefined)
        out.push(`${name}: pulumi-version-file (set the version here)`);
      const v = st.with?.["pulumi-version"];
      if (v !== undefined && JSON.stringify(v) !== JSON.stringify(PULUMI_CLI_VERSION)) {
        out.push(`${name}: pulumi-version ${JSON.stringify(v)} is not exactly ${PULUMI_CLI_VERSION}`);
      }
    }
    for (const st of job.steps) {
      if (/get\.pulumi\.com|pulumi\/releases|npm (i|install) .*@pulumi\/cli/.test(st.run ?? "")) {
        out.push(`${name}: installs the Pulumi CLI outside pulumi/actions`);
      }
    }
  }
  return out;
}

/** Every `uses:` line of a workflow's text pinned by full commit SHA with the tag in a comment. */
function pinViolations(workflowText: string): string[] {
  return workflowText
    .split("\n")
    .filter((l) => /^\s*(-\s+)?uses:/.test(l) && !PINNED_USES.test(l))
    .map((l) => `not pinned by commit SHA with its tag in a comment: ${l.trim()}`);
}

/**
 * Issue 21, the reviewed plan (docs/ROTATING.md "Deploying a reviewed preview"): every `up` is held
 * to a plan (the action's `up` is the Automation API's `pulumi up --yes --skip-preview`: without a
 * plan nothing reviewed constrains it); a deploy uses the pull request's plan only through
 * components/reviewed-plan.ts's check, else a fresh preview's plan made right before; the SSH key is
 * loaded only after the plan steps. A preview saves the plan of the very preview it comments, with
 * the state digest taken before it and the record after, and uploads both for a short time.
 */
const CHECK = /components\/reviewed-plan\.ts check --stack "?\$STACK"?/;
const FRESH_PLAN = "${{ runner.temp }}/fresh-plan.json";
const REVIEWED_PLAN = "${{ runner.temp }}/reviewed-plan/update-plan.json";
function reviewedPlanViolations(wf: Workflow): string[] {
  const out: string[] = [];
  for (const [name, job] of jobsOf(wf)) {
    if (JSON.stringify(job).includes("show-secrets"))
      out.push(`${name}: show-secrets (a plan would hold secrets in plain text)`);
    const up = upStep(job);
    const stackName = (up ?? pulumiSteps(job)[0])?.with?.["stack-name"];
    const stack = typeof stackName === "string" ? stackName : "";
    if (up) {
      const upAt = job.steps.indexOf(up);
      const checkAt = job.steps.findIndex((s) => CHECK.test(s.run ?? ""));
      const check = job.steps[checkAt];
      const id = check?.id;
      if (checkAt < 0 || !id) {
        out.push(`${name}: no plan check (components/reviewed-plan.ts check) with an id before up`);
        continue;
      }
      if (String(check.env?.STACK) !== stack)
        out.push(`${name}: the plan check is for stack ${String(check.env?.STACK)}, up for ${stack}`);
      if (!/--name "reviewed-plan-\$STACK"/.test(check.run ?? ""))
        out.push(`${name}: the check does not fetch the artifact reviewed-plan-<stack>`);
      const wanted = `\${{ steps.${id}.outputs.plan || format('{0}/fresh-plan.json', runner.temp) }}`;
      if (up.with?.plan !== wanted) {
        out.push(
          `${name}: pulumi up is not held to the checked plan or the fresh preview's (plan: ${String(up.with?.plan)})`,
        );
      }
      const fresh = pulumiSteps(job).filter((s) => s.with?.command === "preview");
      const fallback = fresh.find((s) => s.with?.plan === FRESH_PLAN);
      if (fresh.length !== 1 || !fallback) out.push(`${name}: no single fallback preview saving ${FRESH_PLAN}`);
      else {
        if ((fallback.if ?? "").replace(/\s+/g, " ") !== `steps.${id}.outputs.plan == ''`) {
          out.push(
            `${name}: the fallback preview does not run exactly when there is no reviewed plan (if: ${String(fallback.if)})`,
          );
        }
        const at = job.steps.indexOf(fallback);
        if (!(checkAt < at && at < upAt)) out.push(`${name}: the fallback preview is not between the check and up`);
        if (fallback.with?.policyPacks !== "policy")
          out.push(`${name}: the fallback preview runs without the policy pack`);
      }
      const key = job.steps.findIndex((s) => /\bssh-add\b/.test(s.run ?? ""));
      if (key >= 0 && key < checkAt)
        out.push(`${name}: the SSH key is loaded before the plan check (gh and npx would see the agent)`);
      if (key >= 0 && fallback && key < job.steps.indexOf(fallback))
        out.push(`${name}: the SSH key is loaded before the fallback preview`);
      if (refs(check, "secrets").some((k) => /SSH/.test(k))) out.push(`${name}: the plan check gets an SSH key`);
    } else if (isPreview(job)) {
      const preview = pulumiSteps(job)[0];
      const at = job.steps.indexOf(preview);
      if (preview.with?.plan !== REVIEWED_PLAN) out.push(`${name}: the preview saves no plan to ${REVIEWED_PLAN}`);
      const stateAt = job.steps.findIndex((s) => /components\/reviewed-plan\.ts state --stack/.test(s.run ?? ""));
      const state = job.steps[stateAt];
      if (stateAt < 0 || stateAt > at || !state.id)
        out.push(`${name}: no state digest (with an id) before the preview`);
      const recordAt = job.steps.findIndex((s) => /components\/reviewed-plan\.ts record --stack/.test(s.run ?? ""));
      const record = job.steps[recordAt];
      if (recordAt < at || !record || record.env?.STATE_BEFORE !== `\${{ steps.${state?.id}.outputs.digest }}`) {
        out.push(`${name}: no record after the preview checking the state digest taken before it`);
      }
      const upload = job.steps.findIndex((s) => s.uses?.startsWith("actions/upload-artifact@"));
      const u = job.steps[upload];
      if (upload < recordAt || u?.with?.name !== `reviewed-plan-${stack}`) {
        out.push(`${name}: the plan and its record are not uploaded as reviewed-plan-${stack} after the record`);
      } else {
        const paths = String(u.with?.path);
        if (!paths.includes("update-plan.json") || !paths.includes("reviewed-plan.json"))
          out.push(`${name}: the artifact lacks the plan or its record`);
        if (!(Number(u.with?.["retention-days"]) >= 1 && Number(u.with?.["retention-days"]) <= 14)) {
          out.push(
            `${name}: the plan (secrets encrypted) is kept ${String(u.with?.["retention-days"])} days, not 1-14`,
          );
        }
      }
    }
  }
  return out;
}

const allViolations = (wf: Workflow): string[] => [
  ...pullRequestTargetViolations(wf),
  ...secretViolations(wf),
  ...permissionViolations(wf),
  ...checkoutViolations(wf),
  ...concurrencyViolations(wf),
  ...cliVersionViolations(wf),
  ...reviewedPlanViolations(wf),
];

// --- IAM model and checks -----------------------------------------------------------------------

interface Statement {
  Sid?: string;
  Effect: "Allow" | "Deny";
  Principal?: { Federated?: string };
  Action?: string | string[];
  NotAction?: unknown;
  Resource?: string | string[];
  NotResource?: unknown;
  Condition?: Record<string, Record<string, string | string[]>>;
}
interface PolicyDocument {
  Version: string;
  Statement: Statement[];
}
const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : [v].flat());
const loadPolicy = (name: string): PolicyDocument =>
  JSON.parse(readFileSync(join(iamDir, `${name}.json`), "utf8")) as PolicyDocument;
const allowed = (doc: PolicyDocument): Statement[] => doc.Statement.filter((s) => s.Effect === "Allow");
const allowedActions = (doc: PolicyDocument): string[] => allowed(doc).flatMap((s) => list(s.Action));
const denies = (doc: PolicyDocument, action: string, resource?: string): boolean =>
  doc.Statement.some(
    (s) =>
      s.Effect === "Deny" &&
      list(s.Action).includes(action) &&
      !s.Condition &&
      (resource === undefined || list(s.Resource).some((r) => r === "*" || r === resource)),
  );

/** Read-only is all a preview needs: state, the config's decryption, the secret's metadata. */
const PREVIEW_ACTIONS = new Set([
  "s3:GetObject",
  "s3:ListBucket",
  "kms:Decrypt",
  "secretsmanager:DescribeSecret",
  "secretsmanager:ListSecretVersionIds",
]);

/** The OIDC trust policy: only a job in `environment` of the one repository, no wildcard. */
function trustViolations(doc: PolicyDocument, environment: string, repo: string): string[] {
  const out: string[] = [];
  if (doc.Version !== "2012-10-17") out.push(`Version ${doc.Version}`);
  if (doc.Statement.length !== 1) out.push(`${doc.Statement.length} statements, expected exactly 1`);
  for (const s of doc.Statement) {
    if (s.Effect !== "Allow") out.push(`${s.Sid}: not Allow`);
    if (
      !/^arn:aws:iam::\d{12}:oidc-provider\/token\.actions\.githubusercontent\.com$/.test(s.Principal?.Federated ?? "")
    ) {
      out.push(`${s.Sid}: principal ${JSON.stringify(s.Principal)} is not the GitHub OIDC provider`);
    }
    if (JSON.stringify(list(s.Action)) !== JSON.stringify(["sts:AssumeRoleWithWebIdentity"])) {
      out.push(`${s.Sid}: actions ${JSON.stringify(s.Action)}`);
    }
    const conditions = Object.keys(s.Condition ?? {});
    if (JSON.stringify(conditions) !== JSON.stringify(["StringEquals"])) {
      out.push(`${s.Sid}: conditions ${conditions.join(", ")}: only StringEquals (no wildcard match)`);
    }
    const eq = s.Condition?.StringEquals ?? {};
    if (eq["token.actions.githubusercontent.com:aud"] !== "sts.amazonaws.com") out.push(`${s.Sid}: audience`);
    const sub = eq["token.actions.githubusercontent.com:sub"];
    if (sub !== `repo:${repo}:environment:${environment}`) {
      out.push(`${s.Sid}: sub ${JSON.stringify(sub)} is not repo:${repo}:environment:${environment}`);
    }
  }
  return out;
}

/** Least privilege: named actions on this stack's resources only; previews read, never write. */
function permissionPolicyViolations(doc: PolicyDocument, stack: string, preview: boolean): string[] {
  const out: string[] = [];
  if (doc.Version !== "2012-10-17") out.push(`Version ${doc.Version}`);
  const other = stack === "prod" ? "dev" : "prod";
  for (const s of allowed(doc)) {
    const where = s.Sid ?? JSON.stringify(s);
    if (s.NotAction !== undefined || s.NotResource !== undefined)
      out.push(`${where}: NotAction/NotResource in an Allow`);
    for (const a of list(s.Action)) if (a.includes("*")) out.push(`${where}: wildcard action ${a}`);
    const resources = list(s.Resource);
    if (resources.length === 0) out.push(`${where}: no resource`);
    for (const r of resources) {
      const stackScoped =
        /^arn:aws:s3:::[a-z0-9.-]+\/\.pulumi\/meta\.yaml$/.test(r) ||
        new RegExp(
          `^arn:aws:s3:::[a-z0-9.-]+/\\.pulumi/(stacks|history|backups|locks/organization)/pms-secrets/${stack}(\\.json\\*|/\\*)$`,
        ).test(r) ||
        new RegExp(`^arn:aws:secretsmanager:[a-z0-9-]+:\\d{12}:secret:pms-backend/${stack}-\\?{6}$`).test(r) ||
        /^arn:aws:kms:[a-z0-9-]+:\d{12}:key\/[^*?]+$/.test(r);
      const bucket = /^arn:aws:s3:::[a-z0-9.-]+$/.test(r);
      if (bucket) {
        const prefixes = list(s.Condition?.StringLike?.["s3:prefix"]);
        if (JSON.stringify(list(s.Action)) !== JSON.stringify(["s3:ListBucket"]) || prefixes.length === 0) {
          out.push(`${where}: the bucket itself only for s3:ListBucket limited by s3:prefix`);
        }
        for (const p of prefixes) {
          if (!new RegExp(`^\\.pulumi/[a-z/]+/pms-secrets/${stack}(\\.json\\*|/\\*)$`).test(p)) {
            out.push(`${where}: s3:prefix ${p} is not this stack's`);
          }
        }
      } else if (!stackScoped) {
        out.push(`${where}: resource ${r} is not scoped to stack ${stack}`);
      }
      if (r.includes(`/${other}`) || r.includes(`-${other}`)) out.push(`${where}: resource ${r} of stack ${other}`);
    }
  }
  if (preview) {
    for (const a of allowedActions(doc)) if (!PREVIEW_ACTIONS.has(a)) out.push(`preview role may ${a}`);
    for (const a of ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "s3:PutObject", "kms:Encrypt"]) {
      if (!denies(doc, a)) out.push(`preview role does not explicitly deny ${a}`);
    }
  }
  return out;
}

/** The repository named by every trust policy (they must agree). */
const trustedRepo = (): string => {
  const sub =
    loadPolicy("preview-prod.trust").Statement[0]?.Condition?.StringEquals?.["token.actions.githubusercontent.com:sub"];
  const m = /^repo:([^:]+):environment:/.exec(String(sub));
  assert.ok(m, `preview-prod trust names a repository: ${String(sub)}`);
  return m[1];
};

// --- tests: the validator -------------------------------------------------------------------------

function validate(path: string): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [validator, path], { encoding: "utf8" });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe("workflow files pass the GitHub workflow schema (action-validator)", () => {
  it("there are workflow files", () => assert.ok(files.length >= 2, files.join(", ")));
  for (const file of files) {
    it(`${file} is valid`, () => {
      const { status, output } = validate(join(workflowDir, file));
      assert.equal(status, 0, output);
    });
  }

  it("a broken workflow makes the validator fail (the check can fail)", () => {
    const dir = mkdtempSync(join(tmpdir(), "pms-workflow-"));
    try {
      const broken = join(dir, "broken.yml");
      // No runs-on, an unknown event and a non-boolean cancel-in-progress.
      writeFileSync(
        broken,
        "name: broken\non: [pusher]\njobs:\n  up:\n    concurrency:\n      group: x\n      cancel-in-progress: maybe\n    steps:\n      - run: pulumi up\n",
      );
      const { status, output } = validate(broken);
      assert.notEqual(status, 0);
      assert.match(output, /runs-on/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// --- tests: the shipped workflows -------------------------------------------------------------------

/** The workflow triggered by `event`, exactly one. */
function workflowOn(event: string): { file: string; wf: Workflow } {
  const matches = files.map((file) => ({ file, wf: load(file) })).filter(({ wf }) => events(wf).includes(event));
  assert.equal(matches.length, 1, `exactly one workflow runs on ${event}`);
  return matches[0];
}
/** The one job of `wf` running `pulumi <command>` on `stack`. */
function pulumiJob(wf: Workflow, command: string, stack: string): [string, Job] {
  const found = jobsOf(wf).filter(([, j]) =>
    pulumiSteps(j).some((s) => s.with?.command === command && s.with?.["stack-name"] === stack),
  );
  assert.equal(found.length, 1, `one job runs pulumi ${command} on ${stack}`);
  return found[0];
}
const roleVarOf = (job: Job): string => {
  const [aws] = awsSteps(job);
  const m = /^\$\{\{\s*vars\.([A-Z0-9_]+)\s*\}\}$/.exec(String(aws?.with?.["role-to-assume"]));
  assert.ok(m, `role-to-assume is one repository variable: ${String(aws?.with?.["role-to-assume"])}`);
  return m[1];
};

describe("every workflow: who can see which secret", () => {
  for (const file of files) {
    const wf = load(file);
    it(`${file}: no pull_request_target running PR code`, () => assert.deepEqual(pullRequestTargetViolations(wf), []));
    it(`${file}: prod secrets and roles only behind an approval; none for forks; none in a preview's SSH`, () =>
      assert.deepEqual(secretViolations(wf), []));
    it(`${file}: permissions are {} plus, per job, id-token only with a role and pull-requests only with the comment`, () =>
      assert.deepEqual(permissionViolations(wf), []));
    it(`${file}: checkout keeps no token; npm ci runs before any credential`, () =>
      assert.deepEqual(checkoutViolations(wf), []));
    it(`${file}: concurrency per stack (previews superseded, ups never cancelled)`, () =>
      assert.deepEqual(concurrencyViolations(wf), []));

    it(`${file}: AWS access by OIDC role only, never long-lived keys`, () => {
      assert.doesNotMatch(
        text(file),
        /aws-access-key-id|aws-secret-access-key|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY/,
      );
      const aws = jobsOf(wf).flatMap(([, j]) => awsSteps(j));
      if (jobsOf(wf).some(([, j]) => pulumiSteps(j).length > 0)) assert.ok(aws.length > 0);
      for (const s of aws) assert.ok(s.with?.["role-to-assume"], "role-to-assume is set");
    });

    it(`${file}: every action pinned by full commit SHA with its tag in a comment`, () =>
      assert.deepEqual(pinViolations(text(file)), []));
    it(`${file}: every job installs the Pulumi CLI at exactly ${PULUMI_CLI_VERSION}`, () => {
      assert.deepEqual(cliVersionViolations(wf), []);
      const pulumiJobs = jobsOf(wf).filter(([, j]) => pulumiSteps(j).length > 0);
      // A workflow that runs no Pulumi (scheduled-rotation.yml edits one YAML file) has none to pin.
      if (!/pulumi\/actions@/.test(text(file))) return;
      assert.ok(pulumiJobs.length > 0);
      for (const [name, j] of pulumiJobs) {
        assert.equal(String(pulumiActionSteps(j)[0].with?.["pulumi-version"]), PULUMI_CLI_VERSION, name);
      }
    });
    it(`${file}: Node 20 with the npm cache, npm ci`, () => {
      const steps = jobsOf(wf).flatMap(([, j]) => j.steps);
      const node = steps.filter((s) => s.uses?.startsWith("actions/setup-node@"));
      assert.ok(node.length > 0);
      for (const s of node) {
        assert.equal(String(s.with?.["node-version"]), "20");
        assert.equal(s.with?.cache, "npm");
      }
      assert.ok(steps.some((s) => s.run?.trim() === "npm ci"));
      for (const s of steps.filter((x) => x.uses)) assert.match(s.uses!, /@[0-9a-f]{40}$/, s.uses);
    });

    it(`${file}: every job running Pulumi builds the program (npm run build:program) after npm ci, before Pulumi`, () => {
      for (const [name, j] of jobsOf(wf).filter(([, job]) => pulumiSteps(job).length > 0)) {
        const npm = j.steps.findIndex((s) => s.run?.trim() === "npm ci");
        const build = j.steps.findIndex((s) => s.run?.trim() === "npm run build:program");
        const pulumi = j.steps.findIndex((s) => pulumiSteps({ ...j, steps: [s] }).length > 0);
        assert.ok(build > npm && npm >= 0, `${name}: npm run build:program follows npm ci`);
        assert.ok(build < pulumi, `${name}: npm run build:program runs before Pulumi (Pulumi.yaml main: bin/index.js)`);
      }
    });

    it(`${file}: secrets reach run steps through env only and are never echoed`, () => {
      for (const s of jobsOf(wf).flatMap(([, j]) => j.steps.filter((x) => x.run))) {
        assert.doesNotMatch(s.run!, /\$\{\{\s*secrets\./, "no secret expression inside a script");
        assert.doesNotMatch(s.run!, /set -x|echo "?\$SSH_PRIVATE_KEY|echo "?\$PULUMI_CONFIG_PASSPHRASE/);
      }
      assert.doesNotMatch(text(file), /PULUMI_ACCESS_TOKEN/, "the S3 backend needs no Pulumi Cloud token");
    });
  }
});

describe("pull request preview", () => {
  const { wf } = workflowOn("pull_request");
  const [, dev] = pulumiJob(wf, "preview", "dev");
  const [, prod] = pulumiJob(wf, "preview", "prod");

  it("runs on pull_request, never pull_request_target", () => {
    assert.deepEqual(events(wf), ["pull_request"]);
    for (const file of files) assert.ok(!events(load(file)).includes("pull_request_target"), file);
  });

  it("both wait for an approval: prod of `production-preview`, dev of `dev-preview` (it decrypts the dev config)", () => {
    assert.equal(environmentName(prod), "production-preview");
    assert.ok(needsApproval(prod));
    assert.equal(environmentName(dev), "dev-preview");
    assert.ok(needsApproval(dev), "an unreviewed dev preview would hand the dev passphrase to any pushed branch");
  });

  it("dev uses dev credentials only; prod uses the prod preview role and no secret at all", () => {
    assert.deepEqual(refs(dev, "secrets"), ["PULUMI_CONFIG_PASSPHRASE_DEV"]);
    assert.equal(roleVarOf(dev), "AWS_PREVIEW_ROLE_ARN_DEV");
    assert.deepEqual(refs(prod, "secrets"), [], "prod's config is decrypted by the role's KMS access alone");
    assert.equal(roleVarOf(prod), "AWS_PREVIEW_ROLE_ARN_PROD");
  });

  it("runs `pulumi preview --diff`, commented on the PR, with the policy pack, for each stack", () => {
    for (const job of [dev, prod]) {
      const [step] = pulumiSteps(job);
      assert.equal(step.with?.command, "preview");
      assert.equal(step.with?.diff, true);
      assert.equal(step.with?.["comment-on-pr"], true, "the preview comment still reaches the PR");
      assert.equal(step.with?.policyPacks, "policy");
      assert.equal(step.with?.policyPackConfigs, "policy/config.json");
      assert.equal(step.with?.["suppress-outputs"], true);
    }
  });

  it("each preview saves the plan it shows, with the state digest before and the record (tree, state, plan digest) after, uploaded as reviewed-plan-<stack> for 7 days", () => {
    assert.deepEqual(reviewedPlanViolations(wf), []);
    for (const [job, stack] of [
      [dev, "dev"],
      [prod, "prod"],
    ] as const) {
      assert.equal(pulumiSteps(job)[0].with?.plan, REVIEWED_PLAN);
      const upload = job.steps.find((s) => s.uses?.startsWith("actions/upload-artifact@"));
      assert.equal(upload?.with?.name, `reviewed-plan-${stack}`);
      assert.equal(upload?.with?.["retention-days"], 7);
    }
  });

  it("no preview job holds an SSH key or sets sshPrivateKey", () => {
    for (const job of [dev, prod]) {
      assert.doesNotMatch(JSON.stringify(job), /SSH_PRIVATE_KEY|sshPrivateKey/);
      assert.equal(pulumiSteps(job).length, 1, "no other pulumi step (the old one existed only to set the key)");
    }
  });

  it("no committed stack file holds sshPrivateKey (a preview decrypts the stack config)", () => {
    for (const stack of ["dev", "prod"]) {
      const config = (yaml.load(readFileSync(join(root, `Pulumi.${stack}.yaml`), "utf8")) as { config?: object })
        .config;
      assert.ok(config, `Pulumi.${stack}.yaml has config`);
      assert.ok(!Object.keys(config).some((k) => /sshPrivateKey/.test(k)), `Pulumi.${stack}.yaml`);
    }
  });
});

describe("deploy on merge to main", () => {
  const { wf } = workflowOn("push");
  const [devName, dev] = pulumiJob(wf, "up", "dev");
  const [, prod] = pulumiJob(wf, "up", "prod");

  it("triggers on pushes to main only, and each job refuses any other ref", () => {
    assert.deepEqual((wf.on as { push: { branches: string[] } }).push.branches, ["main"]);
    for (const job of [dev, prod]) assert.equal(job.if, "github.ref == 'refs/heads/main'");
  });

  it("runs prod only after dev, behind the `production` environment (required reviewers)", () => {
    assert.equal(environmentName(prod), "production");
    assert.ok([prod.needs].flat().includes(devName), "prod needs the dev job");
    assert.equal(environmentName(dev), "dev");
  });

  it("each stack gets its own role and SSH key; prod's only in the approved job", () => {
    assert.equal(roleVarOf(dev), "AWS_DEPLOY_ROLE_ARN_DEV");
    assert.equal(roleVarOf(prod), "AWS_DEPLOY_ROLE_ARN_PROD");
    assert.deepEqual(refs(dev, "secrets").sort(), ["PULUMI_CONFIG_PASSPHRASE_DEV", "SSH_PRIVATE_KEY_DEV"]);
    assert.deepEqual(refs(prod, "secrets"), ["SSH_PRIVATE_KEY_PROD"]);
  });

  it("the deploy key goes into an ssh-agent before `up` (SSH_AUTH_SOCK for the provider), never into config; the agent always stops", () => {
    for (const [job, secret] of [
      [dev, "SSH_PRIVATE_KEY_DEV"],
      [prod, "SSH_PRIVATE_KEY_PROD"],
    ] as const) {
      const load = job.steps.findIndex((s) => refs(s, "secrets").includes(secret));
      const up = job.steps.indexOf(upStep(job)!);
      assert.ok(load >= 0 && load < up, "the key is loaded before pulumi up");
      const run = job.steps[load].run ?? "";
      assert.match(
        run,
        /eval "\$\(ssh-agent -s -a "\$RUNNER_TEMP\/[^"]+"\)"/,
        "starts an agent on a socket in the job's temp dir",
      );
      assert.match(run, /printf '%s\\n' "\$SSH_PRIVATE_KEY" \| ssh-add -q -/, "adds the key from stdin (no file)");
      assert.match(
        run,
        /echo "SSH_AUTH_SOCK=\$SSH_AUTH_SOCK" >>"\$GITHUB_ENV"/,
        "later steps (and the provider) see the agent",
      );
      assert.equal(refs(job.steps[load], "secrets").length, 1, "the key step gets the key only");
      assert.doesNotMatch(JSON.stringify(job), /sshPrivateKey|config set/);
      const stop = job.steps.slice(up + 1).find((s) => /ssh-agent -k/.test(s.run ?? ""));
      assert.ok(stop && stop.if === "always()", "the agent is killed after up, whatever the outcome");
    }
  });

  it("up is held to a plan: the pull request's reviewed plan when the check finds it made from this tree and state (no second preview), else a fresh preview's", () => {
    assert.deepEqual(reviewedPlanViolations(wf), []);
    for (const job of [dev, prod]) {
      assert.match(String(upStep(job)?.with?.plan), /^\$\{\{ steps\.reviewed\.outputs\.plan \|\| format\(/);
      const check = job.steps.find((s) => s.id === "reviewed");
      assert.match(check?.run ?? "", /gh run download .*--name "reviewed-plan-\$STACK"/);
      assert.deepEqual(
        refs(check ?? { steps: [] }, "secrets").filter((k) => /SSH/.test(k)),
        [],
        "the plan check gets no SSH key",
      );
    }
  });

  it("enforces the policy pack on up too", () => {
    for (const job of [dev, prod]) {
      for (const s of pulumiSteps(job)) assert.equal(s.with?.policyPacks, "policy", String(s.with?.command));
    }
  });
});

describe("scheduled rotation (issue 20)", () => {
  const { file, wf } = workflowOn("schedule");
  const job = Object.values(wf.jobs)[0];
  const bump = job.steps.find((s) => s.run?.includes("components/scheduled-rotation.ts"));

  it("runs daily and on demand, never for pull requests; one run at a time, never cancelled", () => {
    assert.deepEqual(events(wf).sort(), ["schedule", "workflow_dispatch"]);
    const cron = (wf.on as { schedule: { cron: string }[] }).schedule.map((c) => c.cron);
    assert.deepEqual(cron.length, 1);
    assert.match(cron[0], /^\d+ \d+ \* \* \*$/, "daily: the script decides which keys are due (every N days)");
    assert.deepEqual((wf as { concurrency?: unknown }).concurrency, {
      group: "scheduled-rotation",
      "cancel-in-progress": false,
    });
  });

  it("bumps Pulumi.prod.yaml with the script, N and the keys from repository variables, bounded by policy/config.json", () => {
    assert.ok(bump, `${file} runs components/scheduled-rotation.ts`);
    assert.match(bump.run!, /--stack-file Pulumi\.prod\.yaml/);
    assert.doesNotMatch(
      bump.run!,
      /--policy-config|--interval|\bdays\b/i,
      "N only from the variable; the bound only from the policy config",
    );
    assert.equal(bump.env?.SCHEDULED_ROTATION_KEYS, "${{ vars.SCHEDULED_ROTATION_KEYS }}");
    // The script refuses the variable unset, not a whole number, or above maxKeeperAgeDays
    // (test/scheduled-rotation.test.ts): so it must reach the script, as it is.
    assert.equal(bump.env?.SCHEDULED_ROTATION_DAYS, "${{ vars.SCHEDULED_ROTATION_DAYS }}");
  });

  it("no AWS, no Pulumi, no stack secret; its own token only reads; the PR is opened with the App's token", () => {
    assert.deepEqual(awsSteps(job), []);
    assert.deepEqual(pulumiSteps(job), []);
    assert.deepEqual(job.permissions, { contents: "read" });
    assert.deepEqual(refs(wf, "secrets"), ["ROTATION_APP_PRIVATE_KEY"]);
    const pr = job.steps.find((s) => s.run?.includes("gh pr create"));
    assert.equal(pr?.env?.GH_TOKEN, "${{ steps.token.outputs.token }}");
    assert.match(String(pr?.run), /gh pr list --head "\$branch" --state open/, "no second PR while one is open");
  });

  it("the checks catch the App key in a job with AWS, outside its environment, or in a PR workflow", () => {
    const withAws = clone(wf);
    Object.values(withAws.jobs)[0].steps.push({ uses: "aws-actions/configure-aws-credentials@v4", with: {} });
    assert.ok(secretViolations(withAws).some((v) => /ROTATION_APP_PRIVATE_KEY in a job with AWS or Pulumi/.test(v)));
    const elsewhere = clone(wf);
    Object.values(elsewhere.jobs)[0].environment = "dev";
    assert.ok(secretViolations(elsewhere).some((v) => /outside the `rotation-bot` environment/.test(v)));
    const onPr = clone(wf);
    onPr.on = { pull_request: { branches: ["main"] } };
    assert.ok(secretViolations(onPr).some((v) => /in a workflow pull requests run/.test(v)));
  });
});

// --- tests: the checks fail on broken variants ------------------------------------------------------

describe("the workflow checks catch a broken variant", () => {
  const preview = load("preview.yml");
  const deploy = load("deploy.yml");
  const prodPreviewName = pulumiJob(preview, "preview", "prod")[0];
  const devPreviewName = pulumiJob(preview, "preview", "dev")[0];
  const deployProdName = pulumiJob(deploy, "up", "prod")[0];

  /** A copy of `wf` changed by `edit`: its violations must match `expected`. */
  function broken(wf: Workflow, edit: (w: Workflow) => void, expected: RegExp): void {
    assert.deepEqual(allViolations(wf), [], "the shipped workflow is clean");
    const copy = clone(wf);
    edit(copy);
    const found = allViolations(copy);
    assert.ok(
      found.some((v) => expected.test(v)),
      `expected a violation matching ${expected}, got ${JSON.stringify(found)}`,
    );
  }

  it("an up held to no plan (the action's up skips the preview: nothing reviewed constrains it)", () =>
    broken(
      deploy,
      (w) => delete upStep(w.jobs[deployProdName])!.with!.plan,
      /pulumi up is not held to the checked plan/,
    ));
  it("the fallback preview running even with a reviewed plan (or never)", () =>
    broken(
      deploy,
      (w) => delete pulumiSteps(w.jobs[deployProdName]).find((s) => s.with?.command === "preview")!.if,
      /fallback preview does not run exactly when there is no reviewed plan/,
    ));
  it("the reviewed plan used without the check", () =>
    broken(
      deploy,
      (w) => (w.jobs[deployProdName].steps = w.jobs[deployProdName].steps.filter((s) => s.id !== "reviewed")),
      /no plan check/,
    ));
  it("the SSH key loaded before the plan check", () =>
    broken(
      deploy,
      (w) => {
        const steps = w.jobs[deployProdName].steps;
        const key = steps.findIndex((s) => /ssh-add/.test(s.run ?? ""));
        const [k] = steps.splice(key, 1);
        steps.splice(
          steps.findIndex((s) => s.id === "reviewed"),
          0,
          k,
        );
      },
      /SSH key is loaded before the plan check/,
    ));
  it("a preview that saves no plan, or one with secrets in plain text", () => {
    broken(preview, (w) => delete pulumiSteps(w.jobs[prodPreviewName])[0].with!.plan, /the preview saves no plan/);
    broken(preview, (w) => (pulumiSteps(w.jobs[devPreviewName])[0].with!["show-secrets"] = true), /show-secrets/);
  });
  it("the plan kept for 90 days", () =>
    broken(
      preview,
      (w) =>
        (w.jobs[devPreviewName].steps.find((s) => s.uses?.startsWith("actions/upload-artifact@"))!.with![
          "retention-days"
        ] = 90),
      /kept 90 days/,
    ));

  it("prod preview without its approval environment", () =>
    broken(preview, (w) => delete w.jobs[prodPreviewName].environment, /prod role\) in a job without an approval/));
  it("prod preview moved to the dev-preview environment (its reviewers approve dev only)", () =>
    broken(preview, (w) => (w.jobs[prodPreviewName].environment = "dev-preview"), /without an approval environment/));
  it("the prod SSH key handed to the approved prod preview", () =>
    broken(
      preview,
      (w) => (pulumiSteps(w.jobs[prodPreviewName])[0].env = { SSH_PRIVATE_KEY: "${{ secrets.SSH_PRIVATE_KEY_PROD }}" }),
      /a preview job gets secrets\.SSH_PRIVATE_KEY_PROD/,
    ));
  it("the old step that put an SSH key into the preview's stack config", () =>
    broken(
      preview,
      (w) =>
        w.jobs[devPreviewName].steps.splice(3, 0, {
          env: { KEY: "${{ secrets.SSH_PRIVATE_KEY_DEV }}" },
          run: 'printf "%s" "$KEY" | pulumi config set --secret sshPrivateKey',
        }),
      /a preview job (gets secrets\.SSH_PRIVATE_KEY_DEV|sets sshPrivateKey)/,
    ));
  it("a prod secret in the automatic dev preview", () =>
    broken(
      preview,
      (w) => (pulumiSteps(w.jobs[devPreviewName])[0].env = { X: "${{ secrets.PULUMI_CONFIG_PASSPHRASE_PROD }}" }),
      /secrets\.PULUMI_CONFIG_PASSPHRASE_PROD in a job without an approval/,
    ));
  it("the old matrix trick: a prod secret chosen by an expression", () =>
    broken(
      preview,
      (w) =>
        (pulumiSteps(w.jobs[devPreviewName])[0].env = {
          K: "${{ matrix.stack == 'prod' && secrets.SSH_PRIVATE_KEY_PROD || secrets.SSH_PRIVATE_KEY_DEV }}",
        }),
      /SSH_PRIVATE_KEY_PROD in a job without an approval/,
    ));
  it("all secrets dumped with toJSON(secrets)", () =>
    broken(preview, (w) => (w.jobs[devPreviewName].steps[0].env = { ALL: "${{ toJSON(secrets) }}" }), /toJSON/));
  it("a secret in job env (visible to npm ci)", () =>
    broken(
      preview,
      (w) => (w.jobs[devPreviewName].env = { P: "${{ secrets.PULUMI_CONFIG_PASSPHRASE_DEV }}" }),
      /job env exposes/,
    ));
  it("fork pull requests no longer excluded", () =>
    broken(preview, (w) => delete w.jobs[devPreviewName].if, /runs for fork pull requests/));
  it("a deploy role assumed by a preview", () =>
    broken(
      preview,
      (w) => (awsSteps(w.jobs[prodPreviewName])[0].with!["role-to-assume"] = "${{ vars.AWS_DEPLOY_ROLE_ARN_PROD }}"),
      /a preview job assumes vars\.AWS_DEPLOY_ROLE_ARN_PROD/,
    ));
  it("pull_request_target checking out the PR head (pwn request)", () =>
    broken(
      preview,
      (w) => {
        w.on = { pull_request_target: { branches: ["main"] } };
        w.jobs[devPreviewName].steps[0].with = { ref: "${{ github.event.pull_request.head.sha }}" };
      },
      /pull_request_target checks out/,
    ));
  it("write-all at workflow level", () =>
    broken(preview, (w) => (w.permissions = "write-all"), /workflow permissions/));
  it("pull-requests: write on a job that does not comment", () =>
    broken(
      preview,
      (w) => (pulumiSteps(w.jobs[devPreviewName])[0].with!["comment-on-pr"] = false),
      /pull-requests: write but no PR comment/,
    ));
  it("id-token: write on a job without a role", () =>
    broken(
      deploy,
      (w) =>
        (w.jobs[deployProdName].steps = w.jobs[deployProdName].steps.filter((s) => !awsSteps({ steps: [s] }).length)),
      /id-token: write but no role/,
    ));
  it("contents: write", () =>
    broken(deploy, (w) => (permissionMap(w.jobs[deployProdName].permissions)!.contents = "write"), /contents: write/));
  it("a checkout that keeps the token", () =>
    broken(preview, (w) => delete w.jobs[prodPreviewName].steps[0].with, /checkout persists the token/));
  it("npm ci after the credentials", () =>
    broken(
      preview,
      (w) => {
        const steps = w.jobs[prodPreviewName].steps;
        const npm = steps.findIndex((s) => s.run?.trim() === "npm ci");
        steps.push(...steps.splice(npm, 1));
      },
      /npm ci runs with AWS credentials/,
    ));
  it("a stale preview no longer cancelled", () =>
    broken(
      preview,
      (w) => ((w.jobs[prodPreviewName].concurrency as { "cancel-in-progress": boolean })["cancel-in-progress"] = false),
      /stale preview is not cancelled/,
    ));
  it("a running up that can be cancelled", () =>
    broken(
      deploy,
      (w) => ((w.jobs[deployProdName].concurrency as { "cancel-in-progress": boolean })["cancel-in-progress"] = true),
      /running up can be cancelled/,
    ));
  it("the dev preview handed the dev passphrase without an approval (the issue-19 hole)", () =>
    broken(
      preview,
      (w) => (w.jobs[devPreviewName].environment = "dev-preview-automatic"),
      /preview-dev: a preview job \(unreviewed code\) gets credentials without an approval environment/,
    ));
  it("the old deploy step that put the SSH key into the stack config (and so into the state)", () =>
    broken(
      deploy,
      (w) =>
        w.jobs[deployProdName].steps.splice(4, 1, {
          env: { SSH_PRIVATE_KEY: "${{ secrets.SSH_PRIVATE_KEY_PROD }}" },
          run: "printf '%s\\n' \"$SSH_PRIVATE_KEY\" | pulumi config set --secret --stack prod sshPrivateKey",
        }),
      /sets sshPrivateKey .*stored in the state|SSH_PRIVATE_KEY_PROD goes to a step that does not only ssh-add it/,
    ));
  it("the deploy key handed to the pulumi step itself", () =>
    broken(
      deploy,
      (w) => (pulumiSteps(w.jobs[deployProdName])[0].env = { KEY: "${{ secrets.SSH_PRIVATE_KEY_PROD }}" }),
      /SSH_PRIVATE_KEY_PROD goes to a step that does not only ssh-add it/,
    ));
  it("the Pulumi CLI as a range (`^3`, as before issue 19), or not pinned at all", () => {
    broken(
      deploy,
      (w) => (pulumiActionSteps(w.jobs[deployProdName])[0].with!["pulumi-version"] = "^3"),
      /pulumi-version "\^3" is not exactly 3\.248\.0/,
    );
    broken(
      preview,
      (w) => delete pulumiActionSteps(w.jobs[devPreviewName])[0].with!["pulumi-version"],
      /installs no pinned CLI/,
    );
  });
  it("actions pinned by tag (as before issue 19), by a short SHA, or by a SHA without its tag", () => {
    const shipped = text("deploy.yml");
    assert.deepEqual(pinViolations(shipped), []);
    for (const [from, to] of [
      [/@[0-9a-f]{40} # (v\d+)\.\d+\.\d+/, "@$1"],
      [/@([0-9a-f]{12})[0-9a-f]{28}/, "@$1"],
      [/@([0-9a-f]{40}) # v[\d.]+/, "@$1"],
    ] as const) {
      const found = pinViolations(shipped.replace(from, to));
      assert.equal(found.length, 1, `${String(from)}: ${JSON.stringify(found)}`);
      assert.match(found[0], /not pinned by commit SHA with its tag in a comment: (- )?uses: /);
    }
  });
  it("the prod deploy without the production environment", () =>
    broken(
      deploy,
      (w) => delete w.jobs[deployProdName].environment,
      /SSH_PRIVATE_KEY_PROD in a job without an approval/,
    ));
});

// --- tests: IAM -------------------------------------------------------------------------------------

describe("IAM roles (docs/iam)", () => {
  const repo = trustedRepo();
  const byVar = new Map<string, Job>(
    files
      .flatMap((f) => jobsOf(load(f)).map(([, j]) => j))
      .filter((j) => awsSteps(j).length > 0)
      .map((j) => [roleVarOf(j), j]),
  );

  it("every role the workflows assume has a trust and a permission policy, and no other file exists", () => {
    assert.deepEqual([...byVar.keys()].sort(), Object.keys(ROLES).sort());
    const expected = Object.values(ROLES).flatMap((r) => [`${r.file}.permissions.json`, `${r.file}.trust.json`]);
    assert.deepEqual(readdirSync(iamDir).sort(), expected.sort());
  });

  for (const [roleVar, role] of Object.entries(ROLES)) {
    it(`${role.file}: trusts only a job in the \`${role.environment}\` environment of ${repo}, the one using vars.${roleVar}`, () => {
      assert.equal(environmentName(byVar.get(roleVar)!), role.environment);
      assert.deepEqual(trustViolations(loadPolicy(`${role.file}.trust`), role.environment, repo), []);
    });
    it(`${role.file}: least privilege on stack ${role.stack}${role.preview ? ", read-only" : ""}`, () =>
      assert.deepEqual(
        permissionPolicyViolations(loadPolicy(`${role.file}.permissions`), role.stack, role.preview),
        [],
      ));
  }

  it("the prod preview decrypts the Pulumi config key only, never the secret's key nor its value", () => {
    const doc = loadPolicy("preview-prod.permissions");
    const decrypt = allowed(doc).filter((s) => list(s.Action).includes("kms:Decrypt"));
    assert.equal(decrypt.length, 1);
    const [pulumiKey] = list(decrypt[0].Resource);
    const deploy = loadPolicy("deploy-prod.permissions");
    const viaService = allowed(deploy).filter((s) => s.Condition?.StringEquals?.["kms:ViaService"]);
    assert.equal(viaService.length, 1, "the deploy role uses the secret's key through Secrets Manager only");
    const [secretKey] = list(viaService[0].Resource);
    assert.notEqual(pulumiKey, secretKey);
    assert.ok(denies(doc, "kms:Decrypt", secretKey), "explicit deny on the secret's key");
    assert.ok(denies(doc, "secretsmanager:GetSecretValue"));
  });

  it("the dev preview decrypts nothing (the dev config's passphrase is its environment secret)", () =>
    assert.ok(!allowedActions(loadPolicy("preview-dev.permissions")).some((a) => a.startsWith("kms:"))));

  it("only the deploy roles write the secret and the state; never a force delete", () => {
    for (const file of ["deploy-dev", "deploy-prod"]) {
      const doc = loadPolicy(`${file}.permissions`);
      for (const a of ["secretsmanager:PutSecretValue", "secretsmanager:CreateSecret", "s3:PutObject"]) {
        assert.ok(allowedActions(doc).includes(a), `${file} may ${a}`);
      }
      const force = doc.Statement.find(
        (s) => s.Effect === "Deny" && s.Condition?.Bool?.["secretsmanager:ForceDeleteWithoutRecovery"] === "true",
      );
      assert.ok(force, `${file} denies deletion without a recovery window`);
    }
  });

  describe("the IAM checks catch a broken variant", () => {
    const mutate = (name: string, edit: (d: PolicyDocument) => void): PolicyDocument => {
      const d = clone(loadPolicy(name));
      edit(d);
      return d;
    };
    const prodPreview = (edit: (d: PolicyDocument) => void): string[] =>
      permissionPolicyViolations(mutate("preview-prod.permissions", edit), "prod", true);
    const prodTrust = (edit: (d: PolicyDocument) => void): string[] =>
      trustViolations(mutate("preview-prod.trust", edit), "production-preview", repo);
    const first = (d: PolicyDocument): Statement => d.Statement[0];

    it("a wildcard action", () =>
      assert.match(prodPreview((d) => (first(d).Action = ["s3:*"])).join("\n"), /wildcard action s3:\*/));
    it("Resource *", () =>
      assert.match(prodPreview((d) => (first(d).Resource = "*")).join("\n"), /resource \* is not scoped/));
    it("the other stack's state", () =>
      assert.match(
        prodPreview(
          (d) => (first(d).Resource = ["arn:aws:s3:::acme-pulumi-state/.pulumi/stacks/pms-secrets/dev.json*"]),
        ).join("\n"),
        /not scoped to stack prod/,
      ));
    it("a listing of the whole bucket", () =>
      assert.match(prodPreview((d) => delete d.Statement[1].Condition).join("\n"), /limited by s3:prefix/));
    it("the preview role reading secret values", () =>
      assert.match(
        prodPreview(
          (d) => (d.Statement[3].Action = ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]),
        ).join("\n"),
        /preview role may secretsmanager:GetSecretValue/,
      ));
    it("the preview role losing its explicit deny", () =>
      assert.match(prodPreview((d) => (d.Statement = allowed(d))).join("\n"), /does not explicitly deny/));
    it("NotAction in an Allow", () =>
      assert.match(prodPreview((d) => (first(d).NotAction = ["iam:*"])).join("\n"), /NotAction/));
    it("a trust policy for any environment", () =>
      assert.match(
        prodTrust(
          (d) => (first(d).Condition = { StringLike: { "token.actions.githubusercontent.com:sub": `repo:${repo}:*` } }),
        ).join("\n"),
        /only StringEquals/,
      ));
    it("a trust policy for every pull request", () =>
      assert.match(
        prodTrust(
          (d) =>
            (first(d).Condition!.StringEquals["token.actions.githubusercontent.com:sub"] = `repo:${repo}:pull_request`),
        ).join("\n"),
        /is not repo:.*:environment:production-preview/,
      ));
    it("a trust policy without the audience", () =>
      assert.match(
        prodTrust((d) => delete first(d).Condition!.StringEquals["token.actions.githubusercontent.com:aud"]).join("\n"),
        /audience/,
      ));
  });
});

describe("docs/IAM.md tells the admin what the tests cannot see", () => {
  const doc = readFileSync(join(root, "docs", "IAM.md"), "utf8");
  it("each approval environment is listed with required reviewers", () => {
    for (const env of APPROVAL_ENVIRONMENTS) {
      const row = doc.split("\n").find((l) => l.startsWith(`| Environment | \`${env}\``));
      assert.ok(row, `a table row for environment ${env}`);
      assert.match(row, /Required reviewers/);
    }
  });
  it("each role file, secret and variable the workflows use is named", () => {
    const names = files.flatMap((f) => [...refs(load(f), "secrets"), ...refs(load(f), "vars")]);
    for (const n of [...new Set(names), ...readdirSync(iamDir)])
      assert.ok(doc.includes(n), `docs/IAM.md mentions ${n}`);
  });
});
