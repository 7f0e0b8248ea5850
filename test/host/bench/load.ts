/**
 * Constant HTTP load on one test host (or on a load balancer's namespace) from autocannon,
 * measured in 100 ms bins. `startLoad` returns once the generator runs; `stop()` returns what
 * it saw. See load-worker.ts for what counts as failed.
 */
import { spawn } from "node:child_process";
import * as path from "node:path";

export interface LoadSpec {
  /** Network namespace the generator runs in (the test host's th-ID, or the balancer's). */
  netns: string;
  /** Port on 127.0.0.1 inside that namespace. */
  port: number;
  /** Host header (Django answers 400 to a name outside ALLOWED_HOSTS). */
  hostHeader: string;
  path: string;
  /** Concurrent connections and the total request rate per second across them. */
  connections: number;
  rate: number;
  timeoutSeconds: number;
}

export interface LoadResult {
  startMs: number;
  endMs: number;
  ok: number;
  failed: number;
  /** Failure kinds: `http 502`, ECONNREFUSED, ECONNRESET, `request timed out`. */
  errors: Record<string, number>;
  /** Longest time between two consecutive 2xx answers: what a user waited at worst. */
  longestGapMs: number;
  /** Answers per 100 ms bin (t = bin start, ms since epoch). */
  bins: { t: number; ok: number; failed: number }[];
}

export const DEFAULT_LOAD = { path: "/health/", connections: 8, rate: 100, timeoutSeconds: 20 } as const;

export interface RunningLoad {
  stop(): Promise<LoadResult>;
}

export async function startLoad(spec: LoadSpec): Promise<RunningLoad> {
  const worker = path.join(__dirname, "load-worker.ts");
  const child = spawn(
    "ip",
    ["netns", "exec", spec.netns, process.execPath, "--import", "tsx", worker, JSON.stringify(spec)],
    {
      stdio: ["pipe", "pipe", "pipe"],
      cwd: path.join(__dirname, "..", "..", ".."),
    },
  );
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number>((res) => child.on("close", (code) => res(code ?? -1)));
  await new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      if (out.startsWith("ready\n")) {
        clearInterval(t);
        resolve();
      }
    }, 20);
    void exited.then((code) => {
      clearInterval(t);
      reject(new Error(`load generator in ${spec.netns} exited ${code} before it started: ${err.slice(-500)}`));
    });
  });
  return {
    stop: async () => {
      child.stdin.end();
      const code = await exited;
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (code !== 0 || !line) throw new Error(`load generator in ${spec.netns} exited ${code}: ${err.slice(-500)}`);
      return JSON.parse(line) as LoadResult;
    },
  };
}
