/**
 * Disposable real test hosts for the host tests: Debian 13 containers booted with
 * `systemd-nspawn --boot` (see image/build.sh and host.sh), each with its own network namespace,
 * sshd on a pinned host key and the stand-in pms-backend app, reachable on 127.0.0.1 ports.
 *
 *   const fleet = await bootFleet(["web1", "web2"]);
 *   try { await fleet.exec(fleet.hosts[0], "systemctl is-active ssh"); } finally { await fleet.teardown(); }
 *
 *   // Hosts that look like particular servers in the wild (see HOST_VARIANTS):
 *   await bootFleet(["old1"], log, { variant: ["legacy-env", "stopped"], httpHost: "public" });
 *   await bootFleet(["a", "b"], log, { variant: { a: ["envfile"], b: ["template"] } });
 *
 * Needs Linux and root. Hosts are also torn down when the process exits or gets SIGINT/SIGTERM,
 * and fleets left behind by a killed process are reaped by the next bootFleet().
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";

const HOST_DIR = __dirname;
const BUILD_SH = path.join(HOST_DIR, "image", "build.sh");
const HOST_SH = path.join(HOST_DIR, "host.sh");
/** Parent of every fleet's run directory (overlay upper dirs, saved PIDs, logs, client key). */
export const RUN_ROOT = process.env.PMS_TESTHOST_RUN ?? "/run/pms-testhost";

/** What the test-database role looks like inside every host image. */
export const TEST_DB = {
  name: "poultry_db",
  user: "pms",
  password: "pms-db-test-password",
  host: "127.0.0.1",
  port: 5432,
} as const;

/** Where the stand-in app lives inside a host, and its units. */
export const APP = {
  dir: "/srv/pms-backend",
  services: ["pms-backend", "celery-pms"],
  /** The app's venv (Debian's packages via --system-site-packages); the units run its gunicorn/celery. */
  venv: "/srv/pms-backend/venv",
  /** App user and group: own /srv/pms-backend (not the env file) and run both units. */
  user: "pms",
  /** The old guide's check step, exactly as written there (needs bash: `source`). */
  guideCheckCommand: "cd /srv/pms-backend && source venv/bin/activate && python manage.py check --deploy",
} as const;

/**
 * The only name the app answers to: Django's ALLOWED_HOSTS in every env file the image ships,
 * and the settings' default when ALLOWED_HOSTS is unset. Any other Host header gets 400.
 */
export const PUBLIC_HOST = "api.pms.example.com";

/** A local user with a shell and the fleet's ssh key, no sudo, no special group: the attacker. */
export const HOSTILE_USER = "mallory";

/**
 * How a host's units and env files look at boot, composable (each host gets a list). Applied by
 * host.sh before the host boots; files from units/variants/.
 */
export const HOST_VARIANTS = {
  plain: "units as shipped, no EnvironmentFile=, no env file: the app exits for lack of SECRET_KEY",
  envfile:
    "EnvironmentFile=/srv/pms-backend/.env.production in both unit files, the file present (0600 root, PRESET_ENV): app up",
  "legacy-env":
    "a years-old hand-written .env.production (LEGACY_ENV: 0644, export, double quotes, unknown keys); systemd rejects export lines, so the units source it in a bash ExecStart= (no EnvironmentFile=): app up",
  "envfile-other":
    "EnvironmentFile=-/etc/default/pms-backend (tuning keys, OTHER_ENV) in both unit files, before any other",
  "override-envfile":
    "pms-backend.service.d/override.conf with EnvironmentFile=/etc/pms-backend/secret-key.env (OVERRIDE_SECRET_KEY): wins over a 50-*.conf drop-in",
  "override-environment":
    'pms-backend.service.d/override.conf with Environment="SECRET_KEY=..." (ENVIRONMENT_SECRET_KEY): an EnvironmentFile= value beats it',
  template: "celery-pms@.service with celery-pms@default.service enabled; no celery-pms.service",
  notify: "pms-backend Type=notify (gunicorn's sd_notify)",
  socket:
    "pms-backend.socket holds 127.0.0.1:8000; pms-backend Type=notify gunicorn inherits it (LISTEN_FDS), Requires=/After= the socket: restarts queue connections instead of refusing them",
  forking: "celery-pms Type=forking (celery multi, PIDFile=/run/celery-pms/w1.pid)",
  oneshot:
    "celery-pms Type=oneshot + RemainAfterExit=yes around celery multi: active (exited), MainPID=0, worker in the cgroup",
  stopped: "the Celery unit stopped and disabled by the operator (not started at boot)",
  "app-root-owned": "/srv/pms-backend owned by root instead of pms",
  "pg-trust":
    "pg_hba.conf trusts 127.0.0.1/32 and ::1/128 (method trust), as initdb writes without -A: any password logs in over TCP on loopback",
} as const;

export type HostVariant = keyof typeof HOST_VARIANTS;

/** What the `envfile` variant's .env.production holds (as systemd reads it). */
export const PRESET_ENV = {
  SECRET_KEY: "preset-q7Lw2Rk9Tx4Vb8Nz1Hc6Jm3Pd5Gf0Ys7Ue2Ka9Wr4Xt8Bn",
  DEBUG: "False",
  ALLOWED_HOSTS: PUBLIC_HOST,
  DB_NAME: TEST_DB.name,
  DB_USER: TEST_DB.user,
  DB_PASSWORD: TEST_DB.password,
  DB_HOST: TEST_DB.host,
  DB_PORT: String(TEST_DB.port),
} as const;

/**
 * What the `legacy-env` variant's .env.production holds, as bash, python-dotenv and systemd (once
 * the `export ` prefixes are gone) read it: no value has a `$`, backslash or backtick, on which
 * they would disagree.
 */
export const LEGACY_ENV = {
  SECRET_KEY: "legacy-k9#vR2!mQ7*xL4^pZ8&nW3(bT6)yH1_cJ5=fD0+gS9%aE2uK7",
  DEBUG: "False",
  ALLOWED_HOSTS: PUBLIC_HOST,
  DB_NAME: TEST_DB.name,
  DB_USER: TEST_DB.user,
  DB_PASSWORD: TEST_DB.password,
  DB_HOST: TEST_DB.host,
  DB_PORT: String(TEST_DB.port),
  EMAIL_HOST: "smtp.sendgrid.net",
  EMAIL_HOST_USER: "apikey",
  EMAIL_HOST_PASSWORD: "SG.legacy-fixture-pa55w0rd#2019!",
  SENTRY_DSN: "https://0123456789abcdef0123456789abcdef@o123456.ingest.sentry.io/4504",
  CELERY_BROKER_URL: "redis://pms:pms-redis-test-password@127.0.0.1:6379/1",
} as const;

/** Keys of LEGACY_ENV that the program's config does not manage (issue 8: must not be lost). */
export const LEGACY_UNKNOWN_KEYS = [
  "EMAIL_HOST",
  "EMAIL_HOST_USER",
  "EMAIL_HOST_PASSWORD",
  "SENTRY_DSN",
  "CELERY_BROKER_URL",
] as const;

/** The `envfile-other` variant's /etc/default/pms-backend. */
export const OTHER_ENV = {
  GUNICORN_CMD_ARGS: "--timeout 60 --graceful-timeout 20",
  DJANGO_SETTINGS_MODULE: "pmsapp.settings",
  PMS_UNIT_DEFAULTS: "loaded",
} as const;

/** SECRET_KEY set by the `override-envfile` variant's /etc/pms-backend/secret-key.env. */
export const OVERRIDE_SECRET_KEY = "override-Zr8Kq2Wm5Xn1Tb7Vc4Hy9Jd3Lf6Gs0Pa2Ue8Ri5Ow1Qk7Mz";
/** SECRET_KEY set by the `override-environment` variant's Environment= line. */
export const ENVIRONMENT_SECRET_KEY = "environment-Hn4Wc8Rt1Yb6Kx3Mv9Pz2Jq5Ld7Gf0Sa8Ue4Ti1Ow6Qk";

export interface TestHost {
  /** The name given to bootFleet (also the host's hostname). */
  name: string;
  /** Always "127.0.0.1": sshd and HTTP are forwarded from the outer loopback. */
  address: string;
  sshPort: number;
  /** Forwarded to gunicorn's 127.0.0.1:8000 inside the host. */
  httpPort: number;
  /** The host's ed25519 key in authorized_keys form: "ssh-ed25519 AAAA...". */
  hostKey: string;
  /** known_hosts file holding exactly this host's key for [127.0.0.1]:sshPort. */
  knownHostsFile: string;
  /** Unique id of this boot (netns th-<id>, cgroups testhost-<id>). */
  id: string;
  /** This host's run directory (overlay, logs, saved PIDs). */
  runDir: string;
  /** The variants this host booted with (["plain"] when none was asked for). */
  variants: HostVariant[];
  /** The Celery unit of this host: celery-pms.service, or celery-pms@default.service (template). */
  celeryUnit: string;
  /** The Host header the app accepts (PUBLIC_HOST). */
  publicHost: string;
}

export interface BootOptions {
  /** Variants for every host (a list), or per host name (hosts not named boot plain). */
  variant?: HostVariant[] | Record<string, HostVariant[]>;
  /**
   * The Host header `http()` sends when a call does not give one: "loopback" (default, what
   * fetch sends: 127.0.0.1:PORT, which Django refuses unless ALLOWED_HOSTS lists it) or "public"
   * (PUBLIC_HOST, as nginx forwards real traffic).
   */
  httpHost?: "loopback" | "public";
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface HttpInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
  /** The Host header to send, e.g. PUBLIC_HOST or "127.0.0.1". */
  host?: string;
}

export interface HttpResult {
  status: number;
  headers: Headers;
  body: string;
}

export interface TestFleet {
  hosts: TestHost[];
  /** OpenSSH PEM of the client key, authorized for root and deploy on every host. */
  privateKey: string;
  privateKeyPath: string;
  /**
   * Run a shell command on a host over ssh (pinned host key, BatchMode), as root unless
   * opts.user is given. Send secrets and files on stdin, not inside the command string.
   * Never rejects for a non-zero exit: check `code` (255 = ssh itself failed; -1 = timed out).
   */
  exec(
    host: TestHost,
    command: string,
    opts?: { stdin?: string; user?: string; timeoutMs?: number },
  ): Promise<ExecResult>;
  /**
   * GET/POST against the app through the host's HTTP forward. Redirects are not followed.
   * `host` sets the Host header (default: see BootOptions.httpHost).
   */
  http(host: TestHost, path: string, init?: HttpInit): Promise<HttpResult>;
  /** Tear every host down (idempotent). Rejects if anything could not be removed. */
  teardown(): Promise<void>;
}

type Log = (line: string) => void;

/** The host tests' one logger: progress lines on stderr when PMS_TESTHOST_VERBOSE is set. */
export const verboseLog: Log = process.env.PMS_TESTHOST_VERBOSE
  ? (line) => process.stderr.write(`${line}\n`)
  : () => {};

/**
 * Why host tests cannot run on this machine, or undefined if they can. Callers decide whether
 * that is a skip (local run) or a failure (CI).
 */
export function hostTestsUnavailableReason(): string | undefined {
  if (process.platform !== "linux") return `host tests need Linux (this is ${process.platform})`;
  if (typeof process.getuid !== "function" || process.getuid() !== 0) {
    return "host tests need root (systemd-nspawn, overlay mounts, network namespaces); run them as root";
  }
  const fsTypes = safeRead("/proc/filesystems");
  if (fsTypes !== undefined && !/\toverlay$/m.test(fsTypes) && !fs.existsSync("/sys/module/overlay")) {
    // The module may still load on first mount; only a missing module file is conclusive.
    const modules = spawnSync("modinfo", ["overlay"], { stdio: "ignore" });
    if (modules.status !== 0) return "the kernel has no overlay file system support";
  }
  if (
    !fs.existsSync("/sys/fs/cgroup/cgroup.controllers") &&
    !fs.existsSync("/sys/fs/cgroup/unified/cgroup.controllers")
  ) {
    return "no cgroup v2 hierarchy (/sys/fs/cgroup or /sys/fs/cgroup/unified): the test hosts' systemd needs it";
  }
  const tools = ["systemd-nspawn", "debootstrap", "socat", "zstd", "ip", "ssh", "ssh-keygen"];
  const missing = tools.filter((tool) => !onPath(tool));
  if (missing.length > 0 && !onPath("apt-get")) {
    return `missing tools ${missing.join(", ")} and no apt-get to install them`;
  }
  return undefined;
}

let imagePromise: Promise<string> | undefined;

/**
 * Build the host image, or restore it from the cache (PMS_TESTHOST_CACHE, default
 * /var/cache/pms-secrets-testhost). Returns the image directory. Cached per process.
 */
export function ensureImage(log: Log = verboseLog): Promise<string> {
  imagePromise ??= runScript("bash", [BUILD_SH], log, 30 * 60_000).then(({ stdout }) => {
    const dir = stdout.trim().split("\n").pop() ?? "";
    if (!dir.startsWith("/")) throw new Error(`image/build.sh printed no image directory (stdout: ${stdout})`);
    return dir;
  });
  imagePromise.catch(() => {
    imagePromise = undefined; // let a later call retry
  });
  return imagePromise;
}

/**
 * Boot one host per name, in parallel. On any failure every host of the fleet is torn down.
 * `bootFleet(names)`, `bootFleet(names, log)`, `bootFleet(names, opts)` and
 * `bootFleet(names, log, opts)` all work.
 */
export async function bootFleet(
  names: string[],
  logOrOpts?: Log | BootOptions,
  maybeOpts: BootOptions = {},
): Promise<TestFleet> {
  const log: Log = typeof logOrOpts === "function" ? logOrOpts : verboseLog;
  const opts: BootOptions = typeof logOrOpts === "object" ? logOrOpts : maybeOpts;
  const variantsOf = (name: string): HostVariant[] => {
    const v = opts.variant;
    const list = v === undefined ? [] : Array.isArray(v) ? v : (v[name] ?? []);
    return list.length === 0 ? ["plain"] : [...list];
  };
  const reason = hostTestsUnavailableReason();
  if (reason) throw new Error(`cannot boot test hosts: ${reason}`);
  if (names.length === 0) throw new Error("bootFleet needs at least one host name");
  for (const name of names) {
    if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(name)) {
      throw new Error(`host name '${name}' must be 1-31 characters of a-z, 0-9 and '-'`);
    }
  }
  if (new Set(names).size !== names.length) throw new Error(`host names must be unique: ${names.join(", ")}`);
  if (opts.variant !== undefined && !Array.isArray(opts.variant)) {
    const unknownHosts = Object.keys(opts.variant).filter((n) => !names.includes(n));
    if (unknownHosts.length > 0) {
      throw new Error(`bootFleet variant names hosts that are not booted: ${unknownHosts.join(", ")}`);
    }
  }
  for (const name of names) {
    const unknown = variantsOf(name).filter((v) => !(v in HOST_VARIANTS));
    if (unknown.length > 0) {
      throw new Error(
        `host ${name}: unknown variant ${unknown.join(", ")} (known: ${Object.keys(HOST_VARIANTS).join(", ")})`,
      );
    }
  }

  await reapStaleFleets(log);
  const image = await ensureImage(log);

  fs.mkdirSync(RUN_ROOT, { recursive: true, mode: 0o755 });
  const fleetDir = fs.mkdtempSync(path.join(RUN_ROOT, "fleet-"));
  fs.writeFileSync(path.join(fleetDir, "owner"), ownerStamp(process.pid) ?? `${process.pid}`);
  const privateKeyPath = path.join(fleetDir, "id_ed25519");
  await runScript(
    "ssh-keygen",
    ["-q", "-t", "ed25519", "-N", "", "-C", "pms-testhost-client", "-f", privateKeyPath],
    log,
  );
  const privateKey = fs.readFileSync(privateKeyPath, "utf8");

  const fleet = new Fleet(fleetDir, privateKeyPath, privateKey, log, opts.httpHost ?? "loopback");
  liveFleets.add(fleet);
  installExitHooks();

  const started = Date.now();
  const results = await Promise.allSettled(
    names.map(async (name) => {
      // A port picked here can be taken by someone else before socat binds it: retry with
      // fresh ports (and a fresh id) when that is what went wrong.
      for (let attempt = 1; ; attempt++) {
        const id = `${name}-${randomBytes(3).toString("hex")}`;
        const runDir = path.join(fleetDir, "hosts", id);
        fleet.pendingRunDirs.set(id, runDir);
        const [sshPort, httpPort] = [await freePort(), await freePort()];
        try {
          await runScript(
            "bash",
            [
              HOST_SH,
              "boot",
              id,
              runDir,
              "--image",
              image,
              "--ssh-port",
              `${sshPort}`,
              "--http-port",
              `${httpPort}`,
              "--client-key",
              privateKeyPath,
              "--hostname",
              name,
              "--variant",
              variantsOf(name).join(","),
            ],
            log,
            180_000,
          );
        } catch (err) {
          if (attempt >= 3 || !String(err).includes("Address already in use")) throw err;
          log(`${name}: port taken while booting, retrying with other ports`);
          await runScript("bash", [HOST_SH, "teardown", id, runDir], log, 120_000);
          fleet.pendingRunDirs.delete(id);
          continue;
        }
        const hostKey = fs.readFileSync(path.join(runDir, "host_ed25519.pub"), "utf8").trim();
        const host: TestHost = {
          name,
          address: "127.0.0.1",
          sshPort,
          httpPort,
          hostKey,
          knownHostsFile: path.join(runDir, "known_hosts"),
          id,
          runDir,
          variants: variantsOf(name),
          celeryUnit: variantsOf(name).includes("template") ? "celery-pms@default.service" : "celery-pms.service",
          publicHost: PUBLIC_HOST,
        };
        return host;
      }
    }),
  );
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
  fleet.hosts = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  if (failures.length > 0) {
    await fleet.teardown().catch((err: unknown) => log(`teardown after failed boot: ${String(err)}`));
    throw new Error(`booting ${names.join(", ")} failed:\n${failures.map((f) => String(f.reason)).join("\n")}`);
  }
  log(`fleet ${names.join(", ")} ready in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return fleet;
}

// ---------------------------------------------------------------------------------------------

/** Fewer concurrent ssh sessions per host than sshd's default MaxStartups (10) would drop. */
const MAX_SSH_PER_HOST = 8;

class Fleet implements TestFleet {
  hosts: TestHost[] = [];
  /** Every host whose boot was started, booted or not: teardown covers them all. */
  readonly pendingRunDirs = new Map<string, string>();
  private readonly sshSlots = new Map<string, Semaphore>();
  private tornDown: Promise<void> | undefined;

  constructor(
    readonly fleetDir: string,
    readonly privateKeyPath: string,
    readonly privateKey: string,
    private readonly log: Log,
    private readonly httpHost: "loopback" | "public",
  ) {}

  async exec(
    host: TestHost,
    command: string,
    opts: { stdin?: string; user?: string; timeoutMs?: number } = {},
  ): Promise<ExecResult> {
    const slots = this.sshSlots.get(host.id) ?? new Semaphore(MAX_SSH_PER_HOST);
    this.sshSlots.set(host.id, slots);
    return slots.run(() =>
      runSsh(sshArgs(host, this.privateKeyPath, opts.user ?? "root", command), opts.stdin, opts.timeoutMs ?? 120_000),
    );
  }

  http(host: TestHost, urlPath: string, init: HttpInit = {}): Promise<HttpResult> {
    // node:http rather than fetch: fetch ignores a Host header, and Django's answer depends on it.
    const hostHeader = init.host ?? (this.httpHost === "public" ? host.publicHost : `${host.address}:${host.httpPort}`);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: host.address,
          port: host.httpPort,
          path: urlPath,
          method: init.method ?? "GET",
          headers: { ...init.headers, host: hostHeader },
          timeout: init.timeoutMs ?? 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (d: Buffer) => chunks.push(d));
          res.on("error", reject);
          res.on("end", () => {
            const headers = new Headers();
            for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
              headers.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
            }
            resolve({ status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks).toString("utf8") });
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error(`HTTP ${urlPath} on ${host.name} timed out`)));
      req.on("error", reject);
      req.end(init.body);
    });
  }

  teardown(): Promise<void> {
    this.tornDown ??= this.doTeardown();
    return this.tornDown;
  }

  private async doTeardown(): Promise<void> {
    const errors: string[] = [];
    await Promise.all(
      [...this.pendingRunDirs].map(([id, runDir]) =>
        runScript("bash", [HOST_SH, "teardown", id, runDir], this.log, 120_000).catch((err: unknown) => {
          errors.push(String(err));
        }),
      ),
    );
    if (errors.length === 0) fs.rmSync(this.fleetDir, { recursive: true, force: true });
    liveFleets.delete(this);
    if (errors.length > 0) throw new Error(`teardown left things behind in ${this.fleetDir}:\n${errors.join("\n")}`);
  }

  /** Synchronous teardown for process exit, where no promise will run. */
  teardownSync(): void {
    // One shell runs every host's teardown in parallel; spawnSync waits for all of them.
    const args = [...this.pendingRunDirs].flat();
    spawnSync(
      "bash",
      [
        "-c",
        'sh="$1"; shift; while [ $# -gt 0 ]; do bash "$sh" teardown "$1" "$2" & shift 2; done; wait',
        "_",
        HOST_SH,
        ...args,
      ],
      { stdio: ["ignore", "ignore", "inherit"], timeout: 90_000 },
    );
    fs.rmSync(this.fleetDir, { recursive: true, force: true });
    liveFleets.delete(this);
  }
}

export function sshArgs(host: TestHost, keyPath: string, user: string, command: string): string[] {
  return [
    "-F",
    "/dev/null",
    "-p",
    `${host.sshPort}`,
    "-i",
    keyPath,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${host.knownHostsFile}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "LogLevel=ERROR",
    `${user}@${host.address}`,
    command,
  ];
}

function runSsh(args: string[], stdin: string | undefined, timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("ssh", args, { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.stdin.on("error", () => {}); // remote closed stdin early: the exit code tells the story
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString("utf8");
      resolve({
        code: timedOut ? -1 : (code ?? 255),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: timedOut ? `${stderr}\n[testhost] ssh timed out after ${timeoutMs} ms` : stderr,
      });
    });
    child.stdin.end(stdin ?? "");
  });
}

/** Run a local command; stream its stderr lines to log; reject with the stderr tail on failure. */
function runScript(cmd: string, args: string[], log: Log, timeoutMs = 600_000): Promise<{ stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    if (args[0] === HOST_SH) runningScripts.add(child);
    let stdout = "";
    let pending = "";
    const tail: string[] = [];
    const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => {
      pending += d.toString("utf8");
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        tail.push(line);
        if (tail.length > 40) tail.shift();
        log(line);
      }
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      runningScripts.delete(child);
      if (pending) {
        tail.push(pending);
        log(pending);
      }
      if (code === 0) resolve({ stdout });
      else
        reject(
          new Error(
            `${path.basename(args[0] ?? cmd)} ${args.slice(1, 3).join(" ")} failed (${signal ?? `exit ${code}`}):\n${tail.join("\n")}`,
          ),
        );
    });
  });
}

const handedOutPorts = new Set<number>();

/** A free port on 127.0.0.1 (never the same one twice in this process). */
async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.unref();
      server.on("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const addr = server.address();
        server.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
      });
    });
    if (!handedOutPorts.has(port)) {
      handedOutPorts.add(port);
      return port;
    }
  }
}

class Semaphore {
  private active = 0;
  private readonly waiters: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiters.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiters.shift()?.();
    }
  }
}

// --- cleanup on exit and of fleets whose process died ---------------------------------------

const liveFleets = new Set<Fleet>();
/** host.sh processes this module started and that are still running. */
const runningScripts = new Set<ChildProcess>();
let hooksInstalled = false;

function teardownAllSync(): void {
  if (liveFleets.size === 0) return;
  // A boot still in progress would race the teardown: stop it first (its nspawn and forwarders
  // are recorded in the run dir, so teardown finds them).
  for (const child of runningScripts) child.kill("SIGKILL");
  for (const fleet of [...liveFleets]) fleet.teardownSync();
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", teardownAllSync);
  for (const [signal, number] of [
    ["SIGINT", 2],
    ["SIGTERM", 15],
    ["SIGHUP", 1],
  ] as const) {
    process.once(signal, () => {
      teardownAllSync();
      process.exit(128 + number);
    });
  }
}

/** "PID STARTTIME" of a live process, so a recycled PID is not mistaken for the owner. */
function ownerStamp(pid: number): string | undefined {
  const stat = safeRead(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (fields[0] === "Z" || fields[0] === "X") return undefined; // exited, not yet reaped
  return `${pid} ${fields[19]}`; // field 22 of stat = start time
}

async function reapStaleFleets(log: Log): Promise<void> {
  let entries: string[];
  try {
    entries = fs.readdirSync(RUN_ROOT).filter((e) => e.startsWith("fleet-"));
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = path.join(RUN_ROOT, entry);
    const owner = safeRead(path.join(dir, "owner"))?.trim();
    if (!owner) continue; // being created right now, or not ours
    const pid = Number(owner.split(" ")[0]);
    if (ownerStamp(pid) === owner) continue; // its process is alive
    log(`reaping fleet ${dir} left by dead process ${pid}`);
    const hostsDir = path.join(dir, "hosts");
    const ids = fs.existsSync(hostsDir) ? fs.readdirSync(hostsDir) : [];
    const results = await Promise.allSettled(
      ids.map((id) => runScript("bash", [HOST_SH, "teardown", id, path.join(hostsDir, id)], log, 120_000)),
    );
    if (results.every((r) => r.status === "fulfilled")) fs.rmSync(dir, { recursive: true, force: true });
  }
}

function safeRead(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

function onPath(tool: string): boolean {
  return (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin")
    .split(":")
    .some((dir) => dir && fs.existsSync(path.join(dir, tool)));
}
