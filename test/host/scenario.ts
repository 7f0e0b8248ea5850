/**
 * What the host tests, the rehearsal and the benchmark share: a stack config
 * pointing the real program at booted test hosts (written into a real stack file by
 * pulumi-cli.ts), and readers of a host's real state (file bytes, unit state, the
 * running app's key fingerprint, sshd's accepted logins).
 */
import { randomInt } from "node:crypto";
import { alphabetCharacters } from "../../components/alphabet";
import { DEFAULT_ENV_FILE } from "../../components/config/app";
import { fingerprint, parseEnvFile } from "../../components/env-file";
import { APP, PUBLIC_HOST, TEST_DB, TestFleet, TestHost } from "./testhost";

/** Where the program puts the env file with the stack config below (app.envFile's default). */
export const ENV_FILE = DEFAULT_ENV_FILE;
export const HEALTH_URL = "http://127.0.0.1:8000/health/";

export interface FleetConfigOptions {
  /** Login user for every host (root or deploy, which uses sudo -n). */
  user?: string;
  /** Seconds each unit must stay up after a restart. */
  stableSeconds?: number;
  /** Override any top-level config key. */
  overrides?: Record<string, unknown>;
  /** Override single env settings. */
  env?: Record<string, unknown>;
  /** Replace a host's port, e.g. to make it unreachable. */
  portOf?: (host: TestHost) => number;
}

/** The stack config an operator would write for these hosts. */
export function fleetConfig(
  fleet: TestFleet,
  hosts: TestHost[],
  opts: FleetConfigOptions = {},
): Record<string, unknown> {
  return {
    hosts: hosts.map((h) => ({
      name: h.name,
      address: h.address,
      port: opts.portOf ? opts.portOf(h) : h.sshPort,
      user: opts.user ?? "root",
      hostKey: h.hostKey,
    })),
    sshPrivateKey: fleet.privateKey,
    app: {
      dir: APP.dir,
      services: [...APP.services],
      healthUrl: HEALTH_URL,
      checkCommand: `${APP.venv}/bin/python manage.py check --deploy`,
      stableSeconds: opts.stableSeconds ?? 3,
      healthTimeoutSeconds: 20,
    },
    env: {
      DEBUG: "False",
      // The public name only, as Pulumi.prod.yaml ships it: Django refuses Host 127.0.0.1, so the
      // program's health check (Host = first ALLOWED_HOSTS entry) is exercised as in production,
      // and the tests' own requests must send it too (bootFleet httpHost "public"). The program
      // warns about this documentation name; that warning is expected here.
      ALLOWED_HOSTS: PUBLIC_HOST,
      DB_NAME: TEST_DB.name,
      DB_USER: TEST_DB.user,
      DB_HOST: TEST_DB.host,
      DB_PORT: String(TEST_DB.port),
      CELERY_BROKER_URL: "redis://127.0.0.1:6379/0",
      ...opts.env,
    },
    secrets: {
      DB_PASSWORD: TEST_DB.password,
      PAYSTACK_SECRET_KEY: "sk_test_host_fixture",
      HUBTEL_CLIENT_ID: "hubtel-id",
      HUBTEL_CLIENT_SECRET: "hubtel-secret",
    },
    generated: { SECRET_KEY: {}, JWT_SIGNING_KEY: {} },
    rotation: "2026-11-01",
    ...opts.overrides,
  };
}

/**
 * How the env file on a host differs from the one the program sent (empty: it is that file).
 * The host may add exactly one key of its own: SECRET_KEY_FALLBACKS, the previous key(s) it
 * keeps on a graceful rotation (the host agent).
 */
export function envDiff(onHost: string, sent: string): string[] {
  const host = parseEnvFile(onHost);
  const want = parseEnvFile(sent);
  const problems: string[] = [];
  for (const [k, v] of Object.entries(want)) if (host[k] !== v) problems.push(`${k} differs`);
  for (const k of Object.keys(host)) if (!(k in want) && k !== "SECRET_KEY_FALLBACKS") problems.push(`${k} added`);
  return problems;
}

/** The stand-in app reports its key by the program's own fingerprint: sha256 hex, first 16 digits. */
export const keyFingerprint = fingerprint;

/**
 * SSH logins sshd accepted on `host` so far (its journal). The reading itself is one login, so
 * the sessions a run opened are `after - before - 1`.
 */
export async function sshLogins(fleet: TestFleet, host: TestHost): Promise<number> {
  const r = await fleet.exec(host, "journalctl -q -o cat -t sshd -t sshd-session | grep -c '^Accepted ' || true");
  return Number(r.stdout.trim());
}

/**
 * Draws a value the way random.RandomPassword does (uniformly from its character set, with its
 * minimums), for tests that need realistic generated values without running the engine.
 */
export function drawPassword(inputs: Record<string, unknown>): string {
  const length = Number(inputs.length);
  const specials = typeof inputs.overrideSpecial === "string" && inputs.special !== false ? inputs.overrideSpecial : "";
  const all = alphabetCharacters(specials === "" ? "alphanumeric" : "safe");
  for (;;) {
    let v = "";
    for (let i = 0; i < length; i++) v += all[randomInt(all.length)];
    const ok =
      /[A-Z]/.test(v) &&
      /[a-z]/.test(v) &&
      /[0-9]/.test(v) &&
      (specials === "" || [...v].some((c) => specials.includes(c)));
    if (ok) return v;
  }
}

export interface UnitState {
  mainPid: number;
  nRestarts: number;
  activeState: string;
  environmentFiles: string;
}

export async function unitState(fleet: TestFleet, host: TestHost, service: string): Promise<UnitState> {
  const r = await fleet.exec(
    host,
    `systemctl show -p MainPID,NRestarts,ActiveState,EnvironmentFiles ${service}.service`,
  );
  if (r.code !== 0) throw new Error(`systemctl show on ${host.name} failed: ${r.stderr}`);
  const props = Object.fromEntries(
    r.stdout
      .trim()
      .split("\n")
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  return {
    mainPid: Number(props.MainPID),
    nRestarts: Number(props.NRestarts),
    activeState: props.ActiveState,
    environmentFiles: props.EnvironmentFiles ?? "",
  };
}

export async function servicesState(fleet: TestFleet, host: TestHost): Promise<Record<string, UnitState>> {
  const out: Record<string, UnitState> = {};
  for (const s of APP.services) out[s] = await unitState(fleet, host, s);
  return out;
}

/** File bytes plus mode and owner, read on the host. */
export async function hostFile(
  fleet: TestFleet,
  host: TestHost,
  file: string,
): Promise<{ exists: boolean; content: string; mode: string; owner: string }> {
  const r = await fleet.exec(
    host,
    `if [ -e '${file}' ]; then stat -c '%a %U:%G' '${file}'; cat '${file}'; else echo MISSING; fi`,
  );
  if (r.stdout.startsWith("MISSING")) return { exists: false, content: "", mode: "", owner: "" };
  const nl = r.stdout.indexOf("\n");
  const [mode, owner] = r.stdout.slice(0, nl).split(" ");
  return { exists: true, content: r.stdout.slice(nl + 1), mode, owner };
}

/** What the running app reports about its signing key. */
export async function appKeyFingerprint(
  fleet: TestFleet,
  host: TestHost,
): Promise<{ secret_key: string; fallbacks: string[] }> {
  const r = await fleet.http(host, "/key-fingerprint/");
  if (r.status !== 200) throw new Error(`/key-fingerprint/ on ${host.name} answered ${r.status}`);
  return JSON.parse(r.body) as { secret_key: string; fallbacks: string[] };
}

/** Enqueues a Celery task that writes a row to PostgreSQL and waits until the row exists. */
export async function celeryRoundTrip(
  fleet: TestFleet,
  host: TestHost,
  id: string,
  timeoutMs = 30000,
): Promise<boolean> {
  const post = await fleet.http(host, `/task/?id=${encodeURIComponent(id)}`, { method: "POST" });
  if (post.status >= 300) throw new Error(`enqueue on ${host.name} answered ${post.status}: ${post.body}`);
  return waitForTaskRow(fleet, host, id, timeoutMs);
}

export async function waitForTaskRow(
  fleet: TestFleet,
  host: TestHost,
  id: string,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await fleet.http(host, `/task/${encodeURIComponent(id)}/`);
    if (r.status === 200) return true;
    await new Promise((res) => setTimeout(res, 500));
  }
  return false;
}

/** Fails (in CI) or skips (locally) when host tests cannot run here. */
export function unavailable(reason: string | undefined): string | undefined {
  if (!reason) return undefined;
  if (process.env.CI) throw new Error(`host tests cannot run in CI: ${reason}`);
  return reason;
}
