/**
 * `npm run bench`: the program's rotation against the old manual procedure,
 * side by side on the same booted hosts, in one run.
 *
 * (a) wall time from start to healthy on the new key, and failed HTTP requests
 *     under a constant request load, for the program (`pulumi up` through the real
 *     CLI, pulumi-cli.ts: preview, program run and rollout included) and for the old guide (write the env file,
 *     `systemctl daemon-reload`, `systemctl restart pms-backend celery-pms`);
 * (b) SSH sessions opened per host per rotation;
 * (c) total rotation time for 1 and for 3 hosts.
 * Medians of BENCH_RUNS runs (default 5), alternating program and manual.
 * Prints a table and writes bench-results/bench.json. Nothing here asserts a timing.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { renderEnvFile } from "../../components/env-file";
import { PulumiStack } from "./pulumi-cli";
import { appKeyFingerprint, ENV_FILE, fleetConfig, keyFingerprint, sshLogins } from "./scenario";
import { bootFleet, hostTestsUnavailableReason, TestFleet, TestHost } from "./testhost";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
/** Requests per second of the constant load, on one connection at a time per worker. */
const LOAD_WORKERS = 4;
const LOAD_INTERVAL_MS = 20;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Constant load against the app's health URL until stopped; counts failures (non-2xx or no answer). */
function startLoad(fleet: TestFleet, host: TestHost): { stop: () => Promise<{ sent: number; failed: number }> } {
  let running = true;
  let sent = 0;
  let failed = 0;
  const worker = async (): Promise<void> => {
    while (running) {
      const t = Date.now();
      sent++;
      try {
        const r = await fleet.http(host, "/health/", { timeoutMs: 5000 });
        if (r.status < 200 || r.status > 299) failed++;
      } catch {
        failed++;
      }
      const wait = LOAD_INTERVAL_MS - (Date.now() - t);
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
    }
  };
  const workers = Array.from({ length: LOAD_WORKERS }, worker);
  return {
    stop: async () => {
      running = false;
      await Promise.all(workers);
      return { sent, failed };
    },
  };
}

/** Polls until the app answers health 2xx and reports `expectedKeyFp`. */
async function waitHealthyOn(
  fleet: TestFleet,
  host: TestHost,
  expectedKeyFp: string,
  timeoutMs = 120000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const h = await fleet.http(host, "/health/", { timeoutMs: 3000 });
      if (h.status === 200 && (await appKeyFingerprint(fleet, host)).secret_key === expectedKeyFp) return;
    } catch {
      // not up yet
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`${host.name} did not become healthy on the new key`);
}

interface Sample {
  seconds: number;
  sent: number;
  failed: number;
  sshSessions: number;
}

async function programRotation(
  fleet: TestFleet,
  stack: PulumiStack,
  config: Record<string, unknown>,
  host: TestHost,
): Promise<Sample> {
  await stack.setConfig(config);
  const logins = await sshLogins(fleet, host);
  const load = startLoad(fleet, host);
  const t = Date.now();
  const r = await stack.up();
  if (r.code !== 0) throw new Error(r.output);
  await waitHealthyOn(fleet, host, keyFingerprint(stack.generatedValue("SECRET_KEY")));
  const seconds = (Date.now() - t) / 1000;
  const { sent, failed } = await load.stop();
  // The reading itself is one login (see sshLogins).
  return { seconds, sent, failed, sshSessions: (await sshLogins(fleet, host)) - logins - 1 };
}

/** `pulumi up` with `config`; throws with the CLI's output when it fails. */
async function upOrThrow(stack: PulumiStack, config: Record<string, unknown>): Promise<void> {
  await stack.setConfig(config);
  const r = await stack.up();
  if (r.code !== 0) throw new Error(r.output);
}

/** The old guide, step by step over SSH, with a freshly generated key. */
async function manualRotation(
  fleet: TestFleet,
  host: TestHost,
  baseEnv: Record<string, string>,
  run: number,
): Promise<Sample> {
  const key = `manual-${run}-` + "Xk9".repeat(20);
  const envText = renderEnvFile({ ...baseEnv, SECRET_KEY: key });
  const load = startLoad(fleet, host);
  const t = Date.now();
  let sessions = 0;
  const ssh = async (cmd: string, stdin?: string): Promise<void> => {
    sessions++;
    const r = await fleet.exec(host, cmd, { stdin });
    if (r.code !== 0) throw new Error(`manual step failed: ${cmd}: ${r.stderr}`);
  };
  await ssh(`cat > ${ENV_FILE}`, envText); // "edit the env file over SSH"
  await ssh("systemctl daemon-reload");
  await ssh("systemctl restart pms-backend celery-pms");
  await waitHealthyOn(fleet, host, keyFingerprint(key));
  const seconds = (Date.now() - t) / 1000;
  const { sent, failed } = await load.stop();
  return { seconds, sent, failed, sshSessions: sessions };
}

async function main(): Promise<number> {
  const why = hostTestsUnavailableReason();
  if (why) {
    process.stderr.write(`bench needs a Linux machine where you are root: ${why}\n`);
    return 2;
  }
  const log = (l: string): void => void process.stderr.write(`${l}\n`);
  const fleet = await bootFleet(["bench1", "bench2", "bench3"]);
  let stack1: PulumiStack | undefined;
  let stack3: PulumiStack | undefined;
  try {
    stack1 = await PulumiStack.create({ stack: "bench-one" });
    stack3 = await PulumiStack.create({ stack: "bench-three" });
    const [h1] = fleet.hosts;
    let config1 = fleetConfig(fleet, [h1], { stableSeconds: 5 });
    await upOrThrow(stack1, config1);
    // The manual runs reuse the program's plain settings and DB password, with their own key.
    const sent = stack1.sentEnvFile(h1.name);
    const baseEnv = Object.fromEntries(
      sent
        .split("\n")
        .filter((l) => /^[A-Z_]+='/.test(l) && !l.startsWith("SECRET_KEY="))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 2, -1)]),
    );

    const program: Sample[] = [];
    const manual: Sample[] = [];
    for (let i = 0; i < RUNS; i++) {
      config1 = { ...config1, rotate: { SECRET_KEY: `bench-${i}` } };
      program.push(await programRotation(fleet, stack1, config1, h1));
      log(`run ${i + 1}/${RUNS} program: ${JSON.stringify(program[i])}`);
      manual.push(await manualRotation(fleet, h1, baseEnv, i));
      log(`run ${i + 1}/${RUNS} manual:  ${JSON.stringify(manual[i])}`);
    }
    // Put host 1 back on the program's env before the fleet runs.
    config1 = { ...config1, rotate: { SECRET_KEY: "bench-restore" } };
    await upOrThrow(stack1, config1);

    // (c) one host vs three hosts, program only.
    let config3 = fleetConfig(fleet, fleet.hosts, { stableSeconds: 5 });
    await upOrThrow(stack3, config3);
    const one: number[] = [];
    const three: number[] = [];
    for (let i = 0; i < Math.max(3, Math.ceil(RUNS / 2)); i++) {
      config1 = { ...config1, rotate: { SECRET_KEY: `one-${i}` } };
      await stack1.setConfig(config1); // config writes are not part of the rotation's time
      let t = Date.now();
      await upOrThrow(stack1, config1);
      one.push((Date.now() - t) / 1000);
      config3 = { ...config3, rotate: { SECRET_KEY: `three-${i}` } };
      await stack3.setConfig(config3);
      t = Date.now();
      await upOrThrow(stack3, config3);
      three.push((Date.now() - t) / 1000);
      log(`fleet run ${i + 1}: 1 host ${one[i]}s, 3 hosts ${three[i]}s`);
    }

    const rows = [
      ["metric (median)", "program", "manual guide", "ratio program/manual"],
      [
        "(a) start -> healthy on new key, s",
        median(program.map((s) => s.seconds)),
        median(manual.map((s) => s.seconds)),
      ],
      [
        "(a) failed requests during rotation",
        median(program.map((s) => s.failed)),
        median(manual.map((s) => s.failed)),
      ],
      ["(a) requests sent during rotation", median(program.map((s) => s.sent)), median(manual.map((s) => s.sent))],
      [
        "(b) SSH sessions per host per rotation",
        median(program.map((s) => s.sshSessions)),
        median(manual.map((s) => s.sshSessions)),
      ],
      ["(c) rotation of 1 host, s", median(one), "-"],
      ["(c) rotation of 3 hosts (rolling), s", median(three), "-"],
    ].map((r, i) => {
      if (i === 0) return r.map(String);
      if (typeof r[1] === "number" && typeof r[2] !== "number")
        return [String(r[0]), r[1].toFixed(2), String(r[2]), "-"];
      if (typeof r[1] !== "number" || typeof r[2] !== "number") return r.map(String);
      const ratio = r[2] === 0 ? (r[1] === 0 ? "1.00" : "inf") : (r[1] / r[2]).toFixed(2);
      return [String(r[0]), r[1].toFixed(2), r[2].toFixed(2), ratio];
    });
    const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
    const table = rows.map((r) => "| " + r.map((x, c) => (x ?? "").padEnd(widths[c])).join(" | ") + " |");
    table.splice(1, 0, "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
    process.stdout.write(
      `\nRotation benchmark, ${RUNS} runs each, stableSeconds 5, load ${LOAD_WORKERS} workers x ${1000 / LOAD_INTERVAL_MS}/s max on /health/\n`,
    );
    process.stdout.write(table.join("\n") + "\n");
    const outDir = path.join(__dirname, "..", "..", "bench-results");
    fs.mkdirSync(outDir, { recursive: true });
    const json = {
      runs: RUNS,
      stableSeconds: 5,
      load: { workers: LOAD_WORKERS, intervalMs: LOAD_INTERVAL_MS },
      program,
      manual,
      oneHostSeconds: one,
      threeHostsSeconds: three,
      table: rows,
    };
    fs.writeFileSync(path.join(outDir, "bench.json"), JSON.stringify(json, null, 2) + "\n");
    process.stdout.write(`written ${path.join(outDir, "bench.json")}\n`);
    return 0;
  } finally {
    await stack1?.dispose();
    await stack3?.dispose();
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
