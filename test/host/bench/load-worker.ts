/**
 * Runs inside a test host's network namespace (`ip netns exec th-ID node --import tsx ...`):
 * autocannon sends a constant request rate to the app's 127.0.0.1:8000 with the public Host
 * header, and every answer is put in 100 ms bins of wall-clock time (ok = 2xx; failed = any
 * other status, a connection error or a timeout). Stops when stdin closes, then prints one JSON
 * line (LoadResult) on stdout. Running inside the namespace keeps the host's per-connection
 * socat forwarder (and its fork per request) out of the measurement.
 */
import type { EventEmitter } from "node:events";
import type { LoadResult, LoadSpec } from "./load";

interface AutocannonOptions {
  url: string;
  headers: Record<string, string>;
  connections: number;
  overallRate: number;
  duration: number;
  timeout: number;
  reconnectRate: number;
  setupClient: (client: EventEmitter) => void;
}
interface AutocannonInstance extends EventEmitter {
  stop(): void;
}
type Autocannon = (opts: AutocannonOptions, done: (err: unknown) => void) => AutocannonInstance;

const BIN_MS = 100;

function main(): void {
  const spec = JSON.parse(process.argv[2] ?? "{}") as LoadSpec;
  // autocannon ships no types; the signature above is the part of its API used here.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const autocannon = require("autocannon") as Autocannon;
  const bins = new Map<number, { ok: number; failed: number }>();
  const errors: Record<string, number> = {};
  let ok = 0;
  let failed = 0;
  let lastOk = 0;
  let longestGapMs = 0;
  const startMs = Date.now();
  const bin = (): { ok: number; failed: number } => {
    const t = Math.floor(Date.now() / BIN_MS) * BIN_MS;
    let b = bins.get(t);
    if (!b) bins.set(t, (b = { ok: 0, failed: 0 }));
    return b;
  };
  const instance = autocannon(
    {
      url: `http://127.0.0.1:${spec.port}${spec.path}`,
      headers: { host: spec.hostHeader },
      connections: spec.connections,
      overallRate: spec.rate,
      duration: 3600,
      timeout: spec.timeoutSeconds,
      // gunicorn's sync workers answer `Connection: close`; autocannon would write the next
      // request into the closing connection and count the server's reset as a failure. A new
      // connection per request is what a client of this server really does. With a reset after
      // every message autocannon skips its own `response` event, so answers are counted at
      // their status line (`headers`), on each client.
      reconnectRate: 1,
      setupClient: (client) =>
        client.on("headers", (h: { statusCode: number }) => {
          const status = h.statusCode;
          if (status >= 200 && status <= 299) {
            const now = Date.now();
            if (lastOk > 0) longestGapMs = Math.max(longestGapMs, now - lastOk);
            lastOk = now;
            ok++;
            bin().ok++;
          } else {
            failed++;
            bin().failed++;
            errors[`http ${status}`] = (errors[`http ${status}`] ?? 0) + 1;
          }
        }),
    },
    () => undefined,
  );
  instance.on("reqError", (err: Error & { code?: string }) => {
    failed++;
    bin().failed++;
    const kind = err.code ?? err.message;
    errors[kind] = (errors[kind] ?? 0) + 1;
  });
  process.stdout.write("ready\n");
  process.stdin.resume();
  process.stdin.on("end", () => {
    instance.stop();
    const endMs = Date.now();
    const result: LoadResult = {
      startMs,
      endMs,
      ok,
      failed,
      errors,
      longestGapMs: Math.max(longestGapMs, lastOk > 0 ? 0 : endMs - startMs),
      bins: [...bins.entries()].sort((a, b) => a[0] - b[0]).map(([t, b]) => ({ t, ...b })),
    };
    process.stdout.write(JSON.stringify(result) + "\n");
    process.exit(0);
  });
}

main();
