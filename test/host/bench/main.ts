/**
 * `npm run bench` (issue 11): the program's rotation against the old guide's steps 5-6 done in
 * full by hand, on the same socket-activated hosts, under a constant load from autocannon.
 *
 * One host, BENCH_RUNS runs each (default 3), alternating:
 *   program: `pulumi up` through the real CLI (pulumi-cli.ts), the run's own preview included;
 *   manual:  one SSH session typing the guide: write .env.production, `systemctl daemon-reload`,
 *            `systemctl restart pms-backend celery-pms`, `systemctl status` of both,
 *            `check --deploy` exactly as the guide writes it, the journal read for key errors.
 * Reported: (a) start -> the app serves the new key, (b) start -> run verified and done,
 * (c) failed requests and the longest gap between two 2xx answers, (d) SSH sessions per host.
 * (e) the fleet: 1, 3 and 6 hosts with rollout.batches [1, "50%"] (canary, then batches in
 * parallel), under load through a real HAProxy in its own network namespace. Several hosts roll a
 * SECRET_KEY in two phases (the default, issue 20); 3 hosts once more with
 * rollout.secretKeyPhases 1, so the table shows what the second phase costs.
 * (f) DB_PASSWORD (issue 10): a rotation of a generated DB_PASSWORD, single role vs alternating
 * login roles (bench/db.ts), BENCH_RUNS each, same host and load, after the rest.
 * Writes bench-results/bench.json, bench-results/timeline.svg and docs/bench-timeline.svg; prints
 * the table. Nothing here asserts a timing.
 *
 * `npm run bench -- --only db` (or BENCH_ONLY=db) boots one host and runs only (f); it puts its
 * rows into an existing bench-results/bench.json (db, dbTable) and leaves the rest and the chart.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { PulumiStack } from "../pulumi-cli";
import { ENV_FILE, fleetConfig, keyFingerprint, sshLogins } from "../scenario";
import { APP, bootFleet, hostTestsUnavailableReason, PUBLIC_HOST, sshArgs, TestFleet, TestHost } from "../testhost";
import { Balancer, BALANCER_PORT } from "./balancer";
import { Phase } from "./chart";
import { dbRotationConfig, runbookRolesSql, superuserSql } from "./db";
import { DEFAULT_LOAD, LoadResult, LoadSpec, startLoad } from "./load";
import { renderTimeline } from "./render";
import { journalCommand, parseJournal, StageTimes, stageSegments, stagesTable, stageTimes, summarize } from "./stages";
import { stagesSvg } from "./chart";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const ONLY = process.argv.includes("--only")
  ? process.argv[process.argv.indexOf("--only") + 1]
  : process.env.BENCH_ONLY;
const BATCHES: (number | string)[] = [1, "50%"];
const STABLE_SECONDS = 5;
const REPO = path.join(__dirname, "..", "..", "..");
const log = (l: string): void => void process.stderr.write(`${l}\n`);
const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

interface Measured {
  kind: "program" | "manual";
  hosts: number;
  /** (a) seconds from start until the app answered with the new key (one-host runs). */
  keyServedS?: number;
  /** (b) seconds from start until the run was verified and done. */
  doneS: number;
  ok: number;
  failed: number;
  errors: Record<string, number>;
  longestGapMs: number;
  sshPerHost: number;
  t0: number;
  phases: Phase[];
  load: LoadResult;
  /** Program runs: ms from the CLI's start to each stage (stages.ts; the first host's journal). */
  stages?: StageTimes;
}

/** The phase that marks each side's first step on the host: the rollout unit's start, the env write. */
const HOST_START: Record<Measured["kind"], string> = { program: "host script starts", manual: "write env" };
/** The phase that marks each side's last step on the host. */
const HOST_END: Record<Measured["kind"], string> = { program: "host script ends", manual: "done" };

/**
 * Seconds from a run's first step on the host to `until` ("new key served", or "done" for its last
 * step on the host): the rollout itself, without what comes before it reaches the host (for the
 * program: the CLI, the preview, the program runs, the plugins, Secrets Manager, the SSH handshake).
 */
function onHost(m: Measured, until: "new key served" | "done"): number | undefined {
  const at = (label: string): number | undefined => m.phases.find((p) => p.label === label)?.t;
  const start = at(HOST_START[m.kind]);
  const end = at(until === "done" ? HOST_END[m.kind] : until);
  return start === undefined || end === undefined ? undefined : (end - start) / 1000;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Watches the key the app reports (every 100 ms) until stopped; returns when it first equalled `want`. */
function watchKey(fleet: TestFleet, host: TestHost): { stop: (want: string) => Promise<number | undefined> } {
  const seen: { t: number; fp: string }[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const r = await fleet.http(host, "/key-fingerprint/", { timeoutMs: 20000 });
        if (r.status === 200)
          seen.push({ t: Date.now(), fp: (JSON.parse(r.body) as { secret_key: string }).secret_key });
      } catch {
        // counted by the load generator; here only the key matters
      }
      await sleep(100);
    }
  })();
  return {
    stop: async (want) => {
      running = false;
      await loop;
      return seen.find((s) => s.fp === want)?.t;
    },
  };
}

/** systemd's own times of stopping and starting the app units since `sinceMs`, as chart phases. */
async function unitPhases(fleet: TestFleet, host: TestHost, sinceMs: number, scriptsOnly = false): Promise<Phase[]> {
  const r = await fleet.exec(
    host,
    `journalctl -q -o short-unix --no-pager --since @${Math.floor(sinceMs / 1000)} -u pms-backend.service -u celery-pms.service -u 'pms-rollout-*'`,
  );
  const phases: Phase[] = [];
  for (const line of r.stdout.split("\n")) {
    const m = /^(\d+\.\d+) \S+ systemd\[1\]: (Stopping|Started) (pms-backend|celery-pms)\.service/.exec(line);
    const w = /^(\d+\.\d+) \S+ systemd\[1\]: (?:(Started) pms-rollout-|pms-rollout-\S+: (Deactivated))/.exec(line);
    if (w) {
      const label = scriptsOnly
        ? `${host.name} ${w[2] ? "starts" : "done"}`
        : `host script ${w[2] ? "starts" : "ends"}`;
      if (!scriptsOnly || w[2]) phases.push({ t: Math.round(Number(w[1]) * 1000), label });
    }
    if (m && !scriptsOnly) {
      phases.push({
        t: Math.round(Number(m[1]) * 1000),
        label: `${m[3] === "pms-backend" ? "gunicorn" : "celery"} ${m[2] === "Stopping" ? "stop" : "up"}`,
      });
    }
  }
  return phases.filter((p) => p.t >= sinceMs);
}

function loadOn(host: TestHost): LoadSpec {
  return { netns: `th-${host.id}`, port: 8000, hostHeader: PUBLIC_HOST, ...DEFAULT_LOAD };
}

/** `pulumi up` through the real CLI; (b) ends when the CLI exits (the harness's state export is not timed). */
async function programRun(
  fleet: TestFleet,
  stack: PulumiStack,
  config: Record<string, unknown>,
  hosts: TestHost[],
  load: LoadSpec,
  opts: { reviewedPlan?: boolean } = {},
): Promise<Measured> {
  await stack.setConfig(config);
  // The deploy of a reviewed preview (docs/ROTATING.md): the preview that saved the plan ran in
  // the pull request, long before; not timed here. The timed run is `up --skip-preview --plan`.
  const upArgs = ["up", "--yes"];
  if (opts.reviewedPlan) {
    const plan = path.join(stack.dir, "reviewed-update-plan.json");
    fs.rmSync(plan, { force: true });
    const p = await stack.run(["preview", "--save-plan", plan]);
    if (p.code !== 0) throw new Error(`pulumi preview --save-plan failed:\n${p.output}`);
    upArgs.push("--skip-preview", "--plan", plan);
  }
  const logins = await Promise.all(hosts.map((h) => sshLogins(fleet, h)));
  const running = await startLoad(load);
  const key = hosts.length === 1 ? watchKey(fleet, hosts[0]) : undefined;
  await sleep(1000); // a second of steady load before the start, for the chart
  const t0 = Date.now();
  const r = await stack.run(upArgs, { eventLog: true });
  const done = Date.now();
  if (r.code !== 0) throw new Error(`pulumi ${upArgs.join(" ")} failed:\n${r.output}`);
  await sleep(1000);
  const result = await running.stop();
  await stack.exportState();
  const served = await key?.stop(keyFingerprint(stack.generatedValue("SECRET_KEY")));
  const after = await Promise.all(hosts.map((h) => sshLogins(fleet, h)));
  // After the login count (this reading is a login of its own, after `done`: not a stage).
  const journal = parseJournal((await fleet.exec(hosts[0], journalCommand(r.startedAt))).stdout);
  const stages = stageTimes(r, done, journal);
  // Each reading is one login of its own (the `after` one counts itself).
  const ssh = hosts.map((_, i) => after[i] - logins[i] - 1);
  const phases: Phase[] = [{ t: t0, label: "pulumi up" }];
  if (hosts.length === 1) phases.push(...(await unitPhases(fleet, hosts[0], t0)));
  else for (const h of hosts) phases.push(...(await unitPhases(fleet, h, t0, true)));
  if (served !== undefined) phases.push({ t: served, label: "new key served" });
  phases.push({ t: done, label: "run done" });
  return {
    kind: "program",
    hosts: hosts.length,
    keyServedS: served === undefined ? undefined : (served - t0) / 1000,
    doneS: (done - t0) / 1000,
    ok: result.ok,
    failed: result.failed,
    errors: result.errors,
    longestGapMs: result.longestGapMs,
    sshPerHost: median(ssh),
    t0,
    phases,
    load: result,
    stages,
  };
}

/** The guide's steps 5-6 as an operator types them in one SSH session; `@phase` lines mark each step. */
export function manualScript(envText: string): string {
  const eof = `PMS_ENV_${randomBytes(6).toString("hex")}`;
  return [
    "set -e",
    "echo '@phase write env'",
    `cat > ${ENV_FILE} <<'${eof}'`,
    envText.replace(/\n$/, ""),
    eof,
    `chmod 600 ${ENV_FILE}`,
    "echo '@phase daemon-reload'",
    "systemctl daemon-reload",
    "echo '@phase restart'",
    "systemctl restart pms-backend celery-pms",
    "echo '@phase status'",
    "systemctl status pms-backend celery-pms --no-pager >/dev/null",
    "echo '@phase check --deploy'",
    // The guide's check, in bash (it uses `source`) with the env the units get.
    `bash -c 'set -a; . ${ENV_FILE}; set +a; ${APP.guideCheckCommand}' >/dev/null`,
    "echo '@phase journal'",
    "if journalctl -u pms-backend -u celery-pms --since -2min --no-pager | grep -q 'SECRET_KEY environment variable must be set'; then exit 1; fi",
    "echo '@phase done'",
    "",
  ].join("\n");
}

function runStreaming(
  fleet: TestFleet,
  host: TestHost,
  script: string,
  onPhase: (label: string) => void,
): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("ssh", sshArgs(host, fleet.privateKeyPath, "root", "bash -s"), {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let buf = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith("@phase ")) onPhase(line.slice(7));
      }
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, stderr }));
    child.stdin.on("error", () => undefined); // ssh gone before reading it: the exit code tells
    child.stdin.end(script);
  });
}

async function manualRun(fleet: TestFleet, host: TestHost, sentEnv: string): Promise<Measured> {
  const key = `manual-${randomBytes(24).toString("hex")}`;
  const envText = sentEnv.replace(/^SECRET_KEY=.*$/m, `SECRET_KEY='${key}'`);
  if (!envText.includes(key)) throw new Error("the program's env file has no SECRET_KEY line to replace");
  const logins = await sshLogins(fleet, host);
  const running = await startLoad(loadOn(host));
  const watch = watchKey(fleet, host);
  await sleep(1000);
  const t0 = Date.now();
  const phases: Phase[] = [];
  const r = await runStreaming(fleet, host, manualScript(envText), (label) => phases.push({ t: Date.now(), label }));
  const done = Date.now();
  if (r.code !== 0) throw new Error(`manual procedure failed on ${host.name}: ${r.stderr.slice(-400)}`);
  await sleep(1000);
  const result = await running.stop();
  const served = await watch.stop(keyFingerprint(key));
  const ssh = (await sshLogins(fleet, host)) - logins - 1;
  phases.push(...(await unitPhases(fleet, host, t0)));
  if (served !== undefined) phases.push({ t: served, label: "new key served" });
  return {
    kind: "manual",
    hosts: 1,
    keyServedS: served === undefined ? undefined : (served - t0) / 1000,
    doneS: (done - t0) / 1000,
    ok: result.ok,
    failed: result.failed,
    errors: result.errors,
    longestGapMs: result.longestGapMs,
    sshPerHost: ssh,
    t0,
    phases: phases.filter((p) => !["done"].includes(p.label)).concat([{ t: done, label: "done" }]),
    load: result,
  };
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  const lines = rows.map((r) => "| " + r.map((x, c) => (x ?? "").padEnd(widths[c])).join(" | ") + " |");
  lines.splice(1, 0, "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
  return lines.join("\n");
}

const f = (n: number | undefined, d = 2): string => (n === undefined || Number.isNaN(n) ? "-" : n.toFixed(d));
const ratio = (a: number, b: number): string => (b === 0 ? (a === 0 ? "1.00" : "inf") : (a / b).toFixed(2));

interface DbRuns {
  single: Measured[];
  alternating: Measured[];
}

/**
 * (f) On `host`, with its own stack: one setup run (DB_PASSWORD becomes generated), RUNS measured
 * single-role rotations, the runbook's SQL, one setup run onto the roles, RUNS measured
 * alternating rotations. Leaves the host on the roles (run it last).
 */
async function dbRuns(fleet: TestFleet, stack: PulumiStack, host: TestHost): Promise<DbRuns> {
  const config = (roles: boolean, keeper: string): Record<string, unknown> =>
    dbRotationConfig(fleet, host, { roles, keeper, stableSeconds: STABLE_SECONDS });
  const [createRoles, retireOwnerLogin] = runbookRolesSql();
  const setup = async (c: Record<string, unknown>): Promise<void> => {
    await stack.setConfig(c);
    const r = await stack.up();
    if (r.code !== 0) throw new Error(`DB bench setup failed:\n${r.output}`);
  };
  await setup(config(false, "db-setup"));
  const single: Measured[] = [];
  for (let i = 0; i < RUNS; i++) {
    single.push(await programRun(fleet, stack, config(false, `db-single-${i}`), [host], loadOn(host)));
    log(
      `DB single role run ${i + 1}/${RUNS}: ${f(single[i].doneS)} s, ${single[i].failed} failed of ${single[i].ok + single[i].failed}`,
    );
  }
  await superuserSql(fleet, host, createRoles);
  await setup(config(true, `db-single-${RUNS - 1}`));
  await superuserSql(fleet, host, retireOwnerLogin);
  const alternating: Measured[] = [];
  for (let i = 0; i < RUNS; i++) {
    alternating.push(await programRun(fleet, stack, config(true, `db-alt-${i}`), [host], loadOn(host)));
    log(
      `DB alternating run ${i + 1}/${RUNS}: ${f(alternating[i].doneS)} s, ${alternating[i].failed} failed of ${alternating[i].ok + alternating[i].failed}`,
    );
  }
  return { single, alternating };
}

function dbTable(db: DbRuns): string[][] {
  const sum = (ms: Measured[], k: (m: Measured) => number): number => ms.reduce((a, m) => a + k(m), 0);
  const med = (ms: Measured[], k: (m: Measured) => number): string => f(median(ms.map(k)));
  return [
    [`(f) DB_PASSWORD rotation, 1 host, ${RUNS} runs each`, "single role", "alternating roles"],
    [
      "failed / all requests, all runs",
      `${sum(db.single, (m) => m.failed)} / ${sum(db.single, (m) => m.ok + m.failed)}`,
      `${sum(db.alternating, (m) => m.failed)} / ${sum(db.alternating, (m) => m.ok + m.failed)}`,
    ],
    [
      "longest gap between 2xx answers, ms (median)",
      med(db.single, (m) => m.longestGapMs),
      med(db.alternating, (m) => m.longestGapMs),
    ],
    ["start -> run verified and done, s (median)", med(db.single, (m) => m.doneS), med(db.alternating, (m) => m.doneS)],
  ];
}

const strip = (m: Measured): Omit<Measured, "load"> & { bins: number } => {
  const { load, ...rest } = m;
  return { ...rest, bins: load.bins.length };
};

/** `--only db`: boots one host, runs (f), merges its rows into bench.json (or writes a new one). */
async function mainDbOnly(): Promise<number> {
  const fleet = await bootFleet(["bench1"], log, { variant: ["socket", "envfile"], httpHost: "public" });
  let stack: PulumiStack | undefined;
  try {
    stack = await PulumiStack.create({ stack: "bench-db", log: () => undefined });
    const db = await dbRuns(fleet, stack, fleet.hosts[0]);
    const rows = dbTable(db);
    process.stdout.write(
      `\nDB_PASSWORD rotation benchmark (stableSeconds ${STABLE_SECONDS}, autocannon ${DEFAULT_LOAD.connections} connections at ${DEFAULT_LOAD.rate} req/s max on ${DEFAULT_LOAD.path})\n${table(rows)}\n`,
    );
    const outDir = path.join(REPO, "bench-results");
    const file = path.join(outDir, "bench.json");
    fs.mkdirSync(outDir, { recursive: true });
    const doc = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>) : {};
    doc.db = {
      when: new Date().toISOString(),
      runs: RUNS,
      single: db.single.map(strip),
      alternating: db.alternating.map(strip),
    };
    doc.dbTable = rows;
    fs.writeFileSync(file, JSON.stringify(doc, null, 2) + "\n");
    process.stdout.write(`written the db rows into ${file}\n`);
    return 0;
  } finally {
    await stack?.dispose();
    await fleet.teardown();
  }
}

/** bench.json as it is, or an empty document; `put` merges keys into it and writes it back. */
function benchDoc(): { doc: Record<string, unknown>; put: (more: Record<string, unknown>) => string } {
  const outDir = path.join(REPO, "bench-results");
  const file = path.join(outDir, "bench.json");
  fs.mkdirSync(outDir, { recursive: true });
  const doc = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>) : {};
  return {
    doc,
    put: (more) => {
      Object.assign(doc, more);
      fs.writeFileSync(file, JSON.stringify(doc, null, 2) + "\n");
      return file;
    },
  };
}

const minMedMax = (xs: number[], d = 2): string =>
  xs.length === 0 ? "-" : `${f(median(xs), d)} (${f(Math.min(...xs), d)}-${f(Math.max(...xs), d)})`;

/**
 * `--only stages` (issue 21): where a `pulumi up` spends its time, this checkout against another
 * (BENCH_BASELINE=<dir>, e.g. `git worktree add ../perf-base main` with its own `npm ci`), on one
 * host under the same load, BENCH_RUNS runs each, alternating (baseline first in each pair).
 * Writes the stage table into bench.json (stages, stagesTable) and the stacked bars to
 * bench-results/stages.svg and docs/bench-stages.svg.
 */
async function mainStages(): Promise<number> {
  const baseline = process.env.BENCH_BASELINE;
  if (baseline !== undefined && !fs.existsSync(path.join(baseline, "node_modules"))) {
    log(`BENCH_BASELINE=${baseline}: no node_modules there; run npm ci in that checkout first`);
    return 2;
  }
  const fleet = await bootFleet(["bench1"], log, { variant: ["socket", "envfile"], httpHost: "public" });
  const h1 = fleet.hosts[0];
  const sides: {
    name: string;
    stack: PulumiStack;
    runs: Measured[];
    freshTsCache?: boolean;
    reviewedPlan?: boolean;
  }[] = [];
  try {
    const config = (rotate: string): Record<string, unknown> => {
      const c = fleetConfig(fleet, [h1], { stableSeconds: STABLE_SECONDS });
      return { ...c, app: { ...(c.app as object), socketUnit: "pms-backend.socket" }, rotate: { SECRET_KEY: rotate } };
    };
    if (baseline !== undefined) {
      const name = `baseline (${path.basename(baseline)})`;
      sides.push({ name, stack: await PulumiStack.create({ stack: "bench-base", source: baseline }), runs: [] });
      // The same checkout as a CI deploy job runs it: a fresh runner has no ts-node cache (by
      // default in the shared temp directory, kept between runs on one machine), so its program
      // runs compile and type-check the TypeScript first. A prebuilt baseline compiles nothing.
      if (!fs.existsSync(path.join(baseline, "tsconfig.program.json")))
        sides.push({
          name: `${name}, empty ts-node cache (CI runner)`,
          stack: await PulumiStack.create({ stack: "bench-base-ci", source: baseline }),
          runs: [],
          freshTsCache: true,
        });
    }
    sides.push({ name: "this checkout", stack: await PulumiStack.create({ stack: "bench-new" }), runs: [] });
    // The CI deploy of a reviewed preview: `pulumi up --skip-preview --plan` (no second program run).
    sides.push({
      name: "this checkout, reviewed plan (up --skip-preview --plan)",
      stack: await PulumiStack.create({ stack: "bench-plan" }),
      runs: [],
      reviewedPlan: true,
    });
    for (const side of sides) {
      await side.stack.setConfig(config("initial"));
      const r = await side.stack.up();
      if (r.code !== 0) throw new Error(`${side.name}: first deploy failed:\n${r.output}`);
    }
    for (let i = 0; i < RUNS; i++) {
      for (const side of sides) {
        if (side.freshTsCache) {
          side.stack.extraEnv.TS_NODE_CACHE_DIRECTORY = fs.mkdtempSync(path.join(side.stack.dir, "ts-node-cache-"));
        }
        const m = await programRun(fleet, side.stack, config(`stages-${i}`), [h1], loadOn(h1), {
          reviewedPlan: side.reviewedPlan,
        });
        side.runs.push(m);
        log(
          `run ${i + 1}/${RUNS} ${side.name}: first SSH login ${f((m.stages?.sshLogin ?? NaN) / 1000)} s, done ${f(m.doneS)} s, ${m.failed} failed`,
        );
      }
    }
    const named = sides.map((sd) => ({ name: sd.name, summary: summarize(sd.runs.map((m) => m.stages ?? {})) }));
    const rows = stagesTable(named);
    const fixed = sides.map((sd) =>
      sd.runs.map((m) => (m.stages?.sshLogin ?? NaN) / 1000).filter((x) => !Number.isNaN(x)),
    );
    const summaryRows: string[][] = [
      ["before the first SSH login, s: median (min-max)", ...sides.map((sd) => sd.name)],
      ["start -> first SSH login", ...fixed.map((xs) => minMedMax(xs))],
      ["start -> run done", ...sides.map((sd) => minMedMax(sd.runs.map((m) => m.doneS)))],
      [
        "failed / all requests, all runs",
        ...sides.map(
          (sd) => `${sd.runs.reduce((a, m) => a + m.failed, 0)} / ${sd.runs.reduce((a, m) => a + m.ok + m.failed, 0)}`,
        ),
      ],
    ];
    // The host agent's own part (issue 18): from the rollout unit's start on the host.
    for (const [label, until] of [
      ["(a') first step on the host -> app serves the new key", "new key served"],
      ["(b') first step on the host -> host work done", "done"],
    ] as const) {
      summaryRows.push([
        label,
        ...sides.map((sd) => minMedMax(sd.runs.map((m) => onHost(m, until)).filter((x) => x !== undefined))),
      ]);
    }
    if (fixed.length > 1) {
      // One ratio row per side of this checkout (with its preview, and with the reviewed plan).
      sides.forEach((sd, i) => {
        if (sd.stack.stack !== "bench-new" && sd.stack.stack !== "bench-plan") return;
        const mine = median(fixed[i]);
        summaryRows.push([
          `start -> first SSH login, ${sd.name} / this column (medians)`,
          ...fixed.map((xs) => ratio(mine, median(xs))),
        ]);
      });
    }
    process.stdout.write(
      `\nStages of \`pulumi up\` (1 host, stableSeconds ${STABLE_SECONDS}, ${RUNS} runs each, load ${DEFAULT_LOAD.connections} connections at ${DEFAULT_LOAD.rate} req/s)\n${table(rows)}\n\n${table(summaryRows)}\n`,
    );
    const svg = await stagesSvg(
      named.map((n) => ({ name: n.name, segments: stageSegments(n.summary) })),
      `pulumi up, 1 host: stages (medians of ${RUNS} runs each)`,
    );
    fs.mkdirSync(path.join(REPO, "bench-results"), { recursive: true });
    fs.writeFileSync(path.join(REPO, "bench-results", "stages.svg"), svg);
    fs.writeFileSync(path.join(REPO, "docs", "bench-stages.svg"), svg);
    const file = benchDoc().put({
      stages: {
        when: new Date().toISOString(),
        runs: RUNS,
        sides: sides.map((sd) => ({ name: sd.name, runs: sd.runs.map(strip) })),
      },
      stagesTable: rows,
      stagesSummary: summaryRows,
    });
    process.stdout.write(`written the stage rows into ${file}, bench-results/stages.svg, docs/bench-stages.svg\n`);
    return 0;
  } finally {
    for (const sd of sides) await sd.stack.dispose();
    await fleet.teardown();
  }
}

/**
 * `--only phases` (issue 20): a SECRET_KEY rotation on 3 hosts behind HAProxy in two phases (the
 * default) and in one (rollout.secretKeyPhases 1), BENCH_RUNS each, alternating, under load
 * through the balancer. Writes its rows into bench.json (phases, phasesTable).
 */
async function mainPhases(): Promise<number> {
  const names = ["bench1", "bench2", "bench3"];
  const fleet = await bootFleet(names, log, { variant: ["socket", "envfile"], httpHost: "public" });
  let balancer: Balancer | undefined;
  let stack: PulumiStack | undefined;
  try {
    const hosts = fleet.hosts;
    const config = (rotate: string, phases?: 1 | 2): Record<string, unknown> => {
      const c = fleetConfig(fleet, hosts, {
        stableSeconds: STABLE_SECONDS,
        overrides: { rollout: { batches: BATCHES, ...(phases ? { secretKeyPhases: phases } : {}) } },
      });
      return { ...c, app: { ...(c.app as object), socketUnit: "pms-backend.socket" }, rotate: { SECRET_KEY: rotate } };
    };
    stack = await PulumiStack.create({ stack: "bench-phases", log: () => undefined });
    await stack.setConfig(config("initial"));
    const r = await stack.up();
    if (r.code !== 0) throw new Error(r.output);
    balancer = await Balancer.start(fleet, hosts, log);
    const lbLoad: LoadSpec = { netns: balancer.netns, port: BALANCER_PORT, hostHeader: PUBLIC_HOST, ...DEFAULT_LOAD };
    const two: Measured[] = [];
    const one: Measured[] = [];
    for (let i = 0; i < RUNS; i++) {
      two.push(await programRun(fleet, stack, config(`phases2-${i}`), hosts, lbLoad));
      log(
        `run ${i + 1}/${RUNS} two phases: ${f(two[i].doneS)} s, ${two[i].failed} failed of ${two[i].ok + two[i].failed}`,
      );
      one.push(await programRun(fleet, stack, config(`phases1-${i}`, 1), hosts, lbLoad));
      log(
        `run ${i + 1}/${RUNS} one phase: ${f(one[i].doneS)} s, ${one[i].failed} failed of ${one[i].ok + one[i].failed}`,
      );
    }
    const sum = (ms: Measured[], k: (m: Measured) => number): number => ms.reduce((a, m) => a + k(m), 0);
    const rows: string[][] = [
      [
        `SECRET_KEY rotation, 3 hosts, batches ${JSON.stringify(BATCHES)}, load through HAProxy, ${RUNS} runs each`,
        "start -> run done, s: median (min-max)",
        "x two phases (medians)",
        "failed / all requests",
      ],
      [
        "rollout.secretKeyPhases 2 (default: accept, then sign)",
        minMedMax(two.map((m) => m.doneS)),
        "1.00",
        `${sum(two, (m) => m.failed)} / ${sum(two, (m) => m.ok + m.failed)}`,
      ],
      [
        "rollout.secretKeyPhases 1 (logs users out meanwhile)",
        minMedMax(one.map((m) => m.doneS)),
        ratio(median(one.map((m) => m.doneS)), median(two.map((m) => m.doneS))),
        `${sum(one, (m) => m.failed)} / ${sum(one, (m) => m.ok + m.failed)}`,
      ],
    ];
    process.stdout.write(`\n${table(rows)}\n`);
    const file = benchDoc().put({
      phases: { when: new Date().toISOString(), runs: RUNS, two: two.map(strip), one: one.map(strip) },
      phasesTable: rows,
    });
    process.stdout.write(`written the phase rows into ${file}\n`);
    return 0;
  } finally {
    await balancer?.close();
    await stack?.dispose();
    await fleet.teardown();
  }
}

async function main(): Promise<number> {
  const why = hostTestsUnavailableReason();
  if (why) {
    log(`bench needs a Linux machine where you are root: ${why}`);
    return 2;
  }
  if (ONLY === "db") return mainDbOnly();
  if (ONLY === "stages") return mainStages();
  if (ONLY === "phases") return mainPhases();
  if (ONLY !== undefined) {
    log(`--only ${ONLY}: the parts that run alone are db, stages and phases`);
    return 2;
  }
  const names = ["bench1", "bench2", "bench3", "bench4", "bench5", "bench6"];
  const fleet = await bootFleet(names, log, { variant: ["socket", "envfile"], httpHost: "public" });
  const stacks: PulumiStack[] = [];
  let balancer: Balancer | undefined;
  try {
    const configFor = (hosts: TestHost[], rotate: string, phases?: 1 | 2): Record<string, unknown> => {
      const c = fleetConfig(fleet, hosts, {
        stableSeconds: STABLE_SECONDS,
        // fleetConfig's ALLOWED_HOSTS is the public name only: the balancer, the load, the key
        // watcher (httpHost "public") and the program's health check all send it.
        overrides: { rollout: { batches: BATCHES, ...(phases ? { secretKeyPhases: phases } : {}) } },
      });
      // The documented setup (docs/ZERO-DOWNTIME.md): the rollout also checks the socket.
      return { ...c, app: { ...(c.app as object), socketUnit: "pms-backend.socket" }, rotate: { SECRET_KEY: rotate } };
    };
    const sizes = [1, 3, 6];
    for (const n of sizes) stacks.push(await PulumiStack.create({ stack: `bench-${n}`, log: () => undefined }));
    const [s1] = stacks;
    const h1 = fleet.hosts[0];
    await s1.setConfig(configFor([h1], "initial"));
    let r = await s1.up();
    if (r.code !== 0) throw new Error(r.output);

    // One host: program vs manual, alternating.
    const program: Measured[] = [];
    const manual: Measured[] = [];
    for (let i = 0; i < RUNS; i++) {
      program.push(await programRun(fleet, s1, configFor([h1], `p-${i}`), [h1], loadOn(h1)));
      log(
        `run ${i + 1}/${RUNS} program: (a) ${f(program[i].keyServedS)} s (b) ${f(program[i].doneS)} s, ${program[i].failed} failed`,
      );
      manual.push(await manualRun(fleet, h1, s1.sentEnvFile(h1.name)));
      log(
        `run ${i + 1}/${RUNS} manual:  (a) ${f(manual[i].keyServedS)} s (b) ${f(manual[i].doneS)} s, ${manual[i].failed} failed`,
      );
    }

    // The fleet behind HAProxy: 1, 3 and 6 hosts, canary + batches.
    balancer = await Balancer.start(fleet, fleet.hosts, log);
    const lbLoad: LoadSpec = { netns: balancer.netns, port: BALANCER_PORT, hostHeader: PUBLIC_HOST, ...DEFAULT_LOAD };
    for (const [i, n] of sizes.entries()) {
      if (n === 1) continue;
      await stacks[i].setConfig(configFor(fleet.hosts.slice(0, n), "initial"));
      r = await stacks[i].up();
      if (r.code !== 0) throw new Error(r.output);
    }
    const fleetRuns: Measured[] = [];
    for (const [i, n] of sizes.entries()) {
      const m = await programRun(
        fleet,
        stacks[i],
        configFor(fleet.hosts.slice(0, n), `fleet-${n}`),
        fleet.hosts.slice(0, n),
        lbLoad,
      );
      fleetRuns.push(m);
      log(`fleet ${n} host(s) through HAProxy: ${f(m.doneS)} s, ${m.failed} failed of ${m.ok + m.failed}`);
    }
    // The same 3 hosts in one SECRET_KEY phase (users logged out meanwhile; test/host/fleet.test.ts).
    const onePhase = await programRun(
      fleet,
      stacks[1],
      configFor(fleet.hosts.slice(0, 3), "fleet-3-one-phase", 1),
      fleet.hosts.slice(0, 3),
      lbLoad,
    );
    log(
      `fleet 3 hosts, one phase: ${f(onePhase.doneS)} s, ${onePhase.failed} failed of ${onePhase.ok + onePhase.failed}`,
    );

    const med = (ms: Measured[], k: (m: Measured) => number | undefined): number =>
      median(ms.map(k).filter((x): x is number => x !== undefined));
    const sum = (ms: Measured[], k: (m: Measured) => number): number => ms.reduce((a, m) => a + k(m), 0);
    const rows: string[][] = [
      ["metric (1 host, socket activation; medians of " + RUNS + " runs)", "program", "manual guide", "program/manual"],
      ...[
        ["(a) start -> app serves the new key, s", (m: Measured) => m.keyServedS],
        ["(b) start -> run verified and done, s", (m: Measured) => m.doneS],
        ["(a') first step on the host -> app serves the new key, s", (m: Measured) => onHost(m, "new key served")],
        ["(b') first step on the host -> host work done, s", (m: Measured) => onHost(m, "done")],
        ["(c) longest gap between 2xx answers, ms", (m: Measured) => m.longestGapMs],
        ["(d) SSH sessions per host", (m: Measured) => m.sshPerHost],
      ].map(([label, k]) => {
        const key = k as (m: Measured) => number | undefined;
        const p = med(program, key);
        const q = med(manual, key);
        return [label as string, f(p), f(q), ratio(p, q)];
      }),
      [
        "(c) failed / all requests, all runs",
        `${sum(program, (m) => m.failed)} / ${sum(program, (m) => m.ok + m.failed)}`,
        `${sum(manual, (m) => m.failed)} / ${sum(manual, (m) => m.ok + m.failed)}`,
        "-",
      ],
    ];
    const fleetRows: string[][] = [
      [
        `(e) fleet, rollout.batches ${JSON.stringify(BATCHES)}, load through HAProxy`,
        "run, s",
        "x 1 host",
        "failed / all requests",
      ],
      ...fleetRuns.map((m) => [
        `${m.hosts} host${m.hosts === 1 ? "" : "s"}${m.hosts > 1 ? " (two SECRET_KEY phases)" : ""}`,
        f(m.doneS),
        ratio(m.doneS, fleetRuns[0].doneS),
        `${m.failed} / ${m.ok + m.failed}`,
      ]),
      [
        "3 hosts, rollout.secretKeyPhases 1 (logs users out meanwhile)",
        f(onePhase.doneS),
        ratio(onePhase.doneS, fleetRuns[0].doneS),
        `${onePhase.failed} / ${onePhase.ok + onePhase.failed}`,
      ],
    ];
    // (f) last: it leaves bench1 on the alternating roles.
    const dbStack = await PulumiStack.create({ stack: "bench-db", log: () => undefined });
    stacks.push(dbStack);
    const db = await dbRuns(fleet, dbStack, h1);
    const dbRows = dbTable(db);
    const stageSummary = summarize(program.map((m) => m.stages ?? {}));
    const stageRows = stagesTable([{ name: "program, 1 host", summary: stageSummary }]);
    const out = [table(rows), "", table(stageRows), "", table(fleetRows), "", table(dbRows)].join("\n");
    process.stdout.write(
      `\nRotation benchmark (stableSeconds ${STABLE_SECONDS}, autocannon ${DEFAULT_LOAD.connections} connections at ${DEFAULT_LOAD.rate} req/s max on ${DEFAULT_LOAD.path})\n${out}\n`,
    );

    const outDir = path.join(REPO, "bench-results");
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(
      path.join(outDir, "bench.json"),
      JSON.stringify(
        {
          when: new Date().toISOString(),
          runs: RUNS,
          stableSeconds: STABLE_SECONDS,
          batches: BATCHES,
          load: DEFAULT_LOAD,
          program: program.map(strip),
          manual: manual.map(strip),
          fleet: fleetRuns.map(strip),
          fleetOnePhase: strip(onePhase),
          db: { runs: RUNS, single: db.single.map(strip), alternating: db.alternating.map(strip) },
          table: rows,
          fleetTable: fleetRows,
          dbTable: dbRows,
          stagesTable: stageRows,
          timelines: [...program, ...manual, ...fleetRuns].map((m) => ({
            kind: m.kind,
            hosts: m.hosts,
            t0: m.t0,
            phases: m.phases,
            bins: m.load.bins,
          })),
        },
        null,
        2,
      ) + "\n",
    );
    await renderTimeline(program, manual, fleetRuns, BATCHES);
    const stagesChart = await stagesSvg(
      [{ name: "program, 1 host", segments: stageSegments(stageSummary) }],
      `pulumi up, 1 host: stages (medians of ${RUNS} runs)`,
    );
    fs.writeFileSync(path.join(outDir, "stages.svg"), stagesChart);
    process.stdout.write(
      `written ${path.join(outDir, "bench.json")}, ${path.join(outDir, "timeline.svg")}, docs/bench-timeline.svg\n`,
    );
    return 0;
  } finally {
    await balancer?.close();
    for (const s of stacks) await s.dispose();
    await fleet.teardown();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
