/**
 * Helpers of the host-safety tests (safety.test.ts): run the program's own rollout command with
 * the program's own stdin against a booted host, read what the host really runs, and put the host
 * back to "before the first deploy" between scenarios so one boot serves them all.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import type { AppSpec, HostSpec } from "../../components/config";
import { renderEnvFile } from "../../components/env-file";
import { rolloutCommand, rolloutStdin, shellQuote } from "../../components/host-rollout";
import { APP, PUBLIC_HOST, TEST_DB, sshArgs, type ExecResult, type TestFleet, type TestHost } from "./testhost";

export const ENV_FILE = `${APP.dir}/.env.production`;
/** Names of the secret keys, as the program passes them (--redact). */
export const SECRET_KEYS = ["DB_PASSWORD", "JWT_SIGNING_KEY", "PAYSTACK_SECRET_KEY", "SECRET_KEY"];

export function hostSpec(host: TestHost): HostSpec {
  return { name: host.name, address: host.address, port: host.sshPort, user: "root", hostKey: host.hostKey };
}

/** The services of a host: the Celery unit differs on the template variant. */
export function servicesOf(host: TestHost): string[] {
  return ["pms-backend", host.celeryUnit.replace(/\.service$/, "")];
}

export function appSpec(overrides: Partial<AppSpec> = {}): AppSpec {
  return {
    dir: APP.dir,
    envFile: ENV_FILE,
    services: [...APP.services],
    healthUrls: ["http://127.0.0.1:8000/health/"],
    // Django refuses 127.0.0.1 as Host: ALLOWED_HOSTS holds only the public name, as in production.
    healthHost: PUBLIC_HOST,
    healthInsecure: false,
    // The old guide's step as written (bash: `source`), run as the unit runs.
    checkCommand: APP.guideCheckCommand,
    unmanagedKeys: "refuse",
    backupGenerations: 3,
    stableSeconds: 2,
    healthTimeoutSeconds: 15,
    ...overrides,
  };
}

/** A random value from letters and digits (safe in every parser). */
export function randomValue(length: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  return [...randomBytes(length)].map((b) => alphabet[b % alphabet.length]).join("");
}

/** The env file the program renders for the stand-in app, with a fresh SECRET_KEY unless given. */
export function envFile(
  values: Record<string, string> = {},
  omit: readonly string[] = [],
): { text: string; secretKey: string } {
  const secretKey = values.SECRET_KEY ?? randomValue(60);
  const all: Record<string, string> = {
    ALLOWED_HOSTS: PUBLIC_HOST,
    CELERY_BROKER_URL: "redis://127.0.0.1:6379/0",
    DB_HOST: TEST_DB.host,
    DB_NAME: TEST_DB.name,
    DB_PASSWORD: TEST_DB.password,
    DB_PORT: String(TEST_DB.port),
    DB_USER: TEST_DB.user,
    DEBUG: "False",
    JWT_SIGNING_KEY: randomValue(64),
    PAYSTACK_SECRET_KEY: "sk_test_safety_fixture",
    ...values,
    SECRET_KEY: secretKey,
  };
  for (const k of omit) delete all[k];
  const text = renderEnvFile(all, ["Managed by pms-secrets (host safety test)."]);
  return { text, secretKey };
}

export interface RolloutOptions {
  app?: Partial<AppSpec>;
  /** Arguments the program does not pass yet (issue 10's emergency purge, the drift check). */
  extraArgs?: string[];
  secretKeys?: string[];
  timeoutMs?: number;
}

/** The exact command line the program runs on the host. */
export function command(host: TestHost, opts: RolloutOptions = {}): string {
  const app = appSpec({ services: servicesOf(host), ...opts.app });
  const base = rolloutCommand(hostSpec(host), app, opts.secretKeys ?? SECRET_KEYS);
  return [base, ...(opts.extraArgs ?? []).map(shellQuote)].join(" ");
}

/** One rollout over ssh, exactly as the command provider runs it. */
export function rollout(fleet: TestFleet, host: TestHost, env: string, opts: RolloutOptions = {}): Promise<ExecResult> {
  return fleet.exec(host, command(host, opts), { stdin: rolloutStdin(env), timeoutMs: opts.timeoutMs ?? 240_000 });
}

/**
 * A rollout whose local ssh client is SIGKILLed (by its PID) as soon as its output contains
 * `killAt`: the operator's laptop going to sleep, a cancelled CI job.
 */
export function rolloutDropped(
  fleet: TestFleet,
  host: TestHost,
  env: string,
  killAt: RegExp,
  opts: RolloutOptions = {},
): Promise<{ output: string; killed: boolean }> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(
      "ssh",
      sshArgs(host, (fleet as unknown as { privateKeyPath: string }).privateKeyPath, "root", command(host, opts)),
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    let output = "";
    let killed = false;
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    const onData = (d: Buffer): void => {
      output += d.toString("utf8");
      if (!killed && killAt.test(output)) {
        killed = true;
        child.kill("SIGKILL");
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.stdin?.on("error", () => {});
    child.on("error", reject);
    child.on("close", () => {
      clearTimeout(timer);
      resolve({ output, killed });
    });
    child.stdin?.end(rolloutStdin(env));
  });
}

export async function sh(fleet: TestFleet, host: TestHost, script: string, stdin?: string): Promise<string> {
  const r = await fleet.exec(host, script, { stdin, timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`on ${host.name}: ${script}\nexit ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/**
 * SECRET_KEY as every process of each service holds it (main process and its cgroup), read from
 * /proc/PID/environ; "-" for a service with no process.
 */
export async function runningKeys(
  fleet: TestFleet,
  host: TestHost,
  key = "SECRET_KEY",
): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const svc of servicesOf(host)) {
    const r = await sh(
      fleet,
      host,
      `cg=$(systemctl show -p ControlGroup --value ${svc}.service); f=/sys/fs/cgroup$cg/cgroup.procs; ` +
        `[ -r "$f" ] || f=/sys/fs/cgroup/unified$cg/cgroup.procs; ` +
        `for p in $(cat "$f" 2>/dev/null); do tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | grep -m1 '^${key}=' || echo '${key}=<unset>'; done; true`,
    );
    out[svc] = [
      ...new Set(
        r
          .split("\n")
          .filter(Boolean)
          .map((l) => l.slice(key.length + 1)),
      ),
    ];
  }
  return out;
}

export async function activeStates(fleet: TestFleet, host: TestHost): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const svc of servicesOf(host)) {
    out[svc] = (await sh(fleet, host, `systemctl show -p ActiveState --value ${svc}.service`)).trim();
  }
  return out;
}

/** "mode owner" and content of a file (lstat: a link reports as a link), or undefined. */
export async function fileInfo(
  fleet: TestFleet,
  host: TestHost,
  file: string,
): Promise<{ kind: string; mode: string; owner: string; content: string } | undefined> {
  const q = shellQuote(file);
  const r = await fleet.exec(
    host,
    `[ -e ${q} ] || [ -L ${q} ] || exit 7; stat -c '%F|%a|%U:%G' ${q}; [ -L ${q} ] || cat ${q}`,
  );
  if (r.code === 7) return undefined;
  const nl = r.stdout.indexOf("\n");
  const [kind, mode, owner] = r.stdout.slice(0, nl).split("|");
  return { kind, mode, owner, content: r.stdout.slice(nl + 1) };
}

/** Waits until no rollout worker runs on the host (after a dropped session). */
export async function waitWorkerDone(fleet: TestFleet, host: TestHost, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await fleet.exec(
      host,
      "systemctl list-units --no-legend --plain 'pms-rollout-*' --state=active,activating | grep -c . ; " +
        "pgrep -f -c '^/bin/bash -s --|/load[.]py /var/lib/pms-secrets/runs/' || true",
    );
    const [units, scripts] = r.stdout.trim().split("\n").map(Number);
    if (units === 0 && scripts === 0) return;
    if (Date.now() > deadline) throw new Error(`a rollout still runs on ${host.name} after ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 500));
  }
}

/**
 * Back to the state of a host before its first deploy: no env file, no drop-ins, no state, no
 * test fixtures (extra units settings, mounts, planted links), app dir owned by root, services
 * enabled and crash-looping for lack of SECRET_KEY.
 */
export async function resetHost(fleet: TestFleet, host: TestHost): Promise<void> {
  await sh(
    fleet,
    host,
    `set -u
    mountpoint -q /srv/pms-env && umount /srv/pms-env
    rm -rf /srv/pms-env /etc/pms-legacy /root/victim* /var/lib/pms-secrets /run/lock/pms-secrets.lock
    find ${APP.dir} -maxdepth 1 \\( -name '.env*' -o -name '.pms-secrets*' \\) -exec rm -rf {} +
    chown ${APP.user}:${APP.user} ${APP.dir}; chmod 755 ${APP.dir}
    for s in ${APP.services.join(" ")}; do
      rm -rf /etc/systemd/system/$s.service.d /run/systemd/system/$s.service.d
    done
    systemctl daemon-reload
    for s in ${APP.services.join(" ")}; do systemctl reset-failed $s.service || true; systemctl enable --quiet $s.service; systemctl restart $s.service || true; done
    true`,
  );
}

/** Whether `text` contains any of `values` (for "nothing secret printed"). */
export function leaked(text: string, values: string[]): string[] {
  return values.filter((v) => v.length > 0 && text.includes(v));
}
