/**
 * The real Pulumi CLI against booted test hosts: every host test, the rehearsal, the
 * benchmark and the README preview excerpt drive `pulumi` through this harness.
 *
 * A `PulumiStack` is a throwaway workspace holding this project exactly as an operator has it
 * (Pulumi.yaml, main.js, index.ts, components/, agent/, package.json, tsconfig*.json, the prebuilt
 * program in bin/ as `npm run build:program` makes it; node_modules linked), a
 * local backend (`pulumi login file://<tmp>`), a passphrase secrets provider, its own
 * PULUMI_HOME, and a Moto server on a free 127.0.0.1 port standing in for AWS Secrets Manager.
 * Config is written into the real `Pulumi.<stack>.yaml` by `pulumi config set` (secrets with
 * `--secret`, their values on stdin, never in argv).
 *
 * The tools come from tools/real/build.sh (the real CLI built from pkg/v3; the upstream language
 * host, command and random providers built from their release sources; our aws stand-in: see
 * tools/real/README.md); the providers are installed into the stack's PULUMI_HOME as on a user's
 * machine. PMS_TOOLS_BIN=<dir> skips the build script and uses that directory.
 *
 * Every CLI call is recorded (argv, exit code, stdout, stderr, engine events);
 * `leaks()` scans all of it for every secret value the stack ever held.
 *
 * The program logs in to hosts only through an SSH agent (components/config/ssh.ts). Each stack
 * has its own `ssh-agent` (started on first need, ended by its PID in dispose()); every CLI call
 * gets its SSH_AUTH_SOCK, so the command provider the CLI starts inherits it, as in the deploy job.
 * `setConfig({ sshPrivateKey })` (what fleetConfig() returns) loads that key into the agent and
 * writes nothing to the stack config.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { agentBundle } from "../../components/host-rollout";

export const REPO = path.resolve(__dirname, "..", "..");
export const PROJECT = "pms-secrets";
const BUILD_SH = path.join(REPO, "tools", "real", "build.sh");
const MOTO_SH = path.join(REPO, "tools", "real", "moto.sh");
/** What the engine needs on PATH: the CLI and every plugin this program uses. */
export const REQUIRED_TOOLS = [
  "pulumi",
  "pulumi-language-nodejs",
  "pulumi-resource-command",
  "pulumi-resource-random",
  "pulumi-resource-aws",
] as const;
export const AWS_REGION = "eu-west-1";

/** Resource plugins by name and the version this project's SDK package asks for. */
/** The resource plugins the program's SDK packages ask for, at the versions they ask for. */
export const RESOURCE_PLUGINS: ReadonlyArray<[string, string]> = ["command", "random", "aws"].map((name) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "node_modules", "@pulumi", name, "package.json"), "utf8")) as {
    version: string;
  };
  return [name, pkg.version];
});

/**
 * `pulumi plugin install` argument lists that put the built plugins from `bin` into a
 * PULUMI_HOME's plugin cache at RESOURCE_PLUGINS' versions, as a real installation has them.
 */
export function pluginInstallArgs(bin: string): string[][] {
  return RESOURCE_PLUGINS.map(([name, version]) => [
    "plugin",
    "install",
    "resource",
    name,
    version,
    "--file",
    path.join(bin, `pulumi-resource-${name}`),
  ]);
}

export type Log = (line: string) => void;

/** One engine event from `--event-log` (only the fields the tests read). */
export interface EngineEvent {
  sequence: number;
  /** Unix time in whole seconds. */
  timestamp?: number;
  preludeEvent?: object;
  resourcePreEvent?: { metadata: StepMetadata; planning?: boolean };
  resOutputsEvent?: { metadata: StepMetadata; planning?: boolean };
  resOpFailedEvent?: { metadata: StepMetadata; status: number; steps: number };
  diagnosticEvent?: { urn?: string; message: string; severity: string };
  summaryEvent?: { resourceChanges?: Record<string, number>; durationSeconds?: number };
  policyEvent?: { message: string; policyName: string; enforcementLevel: string; resourceUrn?: string };
  cancelEvent?: object;
}

export interface StepMetadata {
  op: string;
  urn: string;
  type: string;
  diffs?: string[];
  detailedDiff?: Record<string, { kind: string; inputDiff?: boolean }> | null;
}

export interface CliResult {
  args: string[];
  code: number;
  stdout: string;
  stderr: string;
  /** stdout then stderr: what a person running the command sees. */
  output: string;
  ms: number;
  events: EngineEvent[];
  /**
   * The event log as it grew, with the time each event reached the file (the harness reads it
   * every 20 ms while the CLI runs; the engine's own `timestamp` has whole seconds only): one
   * segment per write of the file, i.e. [preview, update] for `pulumi up`. The bench
   * (test/host/bench/stages.ts) times its stages with these.
   */
  timedEvents: TimedEvent[][];
  /** When the CLI process was started, ms since the epoch. */
  startedAt: number;
  /** true when the call was killed by the harness's own timeout. */
  timedOut: boolean;
}

/** A step the engine took on one resource, from the event log. */
export interface Step {
  /** Resource name (last URN segment), e.g. `web1-rollout`. */
  name: string;
  type: string;
  /** create, update, replace, create-replacement, delete-replaced, delete, same, refresh, ... */
  op: string;
  ok: boolean;
}

export interface StackOptions {
  stack: string;
  log?: Log;
  /** Extra environment for every CLI call (e.g. SSH_AUTH_SOCK). */
  env?: Record<string, string>;
  /**
   * The checkout whose program the workspace holds (default: this one). The bench compares this
   * checkout with another (e.g. `git worktree add ../perf-base main`), each with its own node_modules.
   */
  source?: string;
}

export interface StateResource {
  urn: string;
  type: string;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
}

let toolsPromise: Promise<string> | undefined;

const programBuilds = new Map<string, Promise<string>>();

/**
 * The prebuilt program of checkout `source` (Pulumi.yaml `main: main.js` loading bin/index.js, `npm run
 * build:program`), compiled once per process into a directory of its own (two test files may
 * build at the same time; the checkout's own bin/ is left alone). Resolves to that bin directory,
 * or to undefined when the checkout runs its TypeScript directly (no tsconfig.program.json).
 */
function programBuild(source: string, log: Log): Promise<string | undefined> {
  if (!fs.existsSync(path.join(source, "tsconfig.program.json"))) return Promise.resolve(undefined);
  let p = programBuilds.get(source);
  if (!p) {
    p = (async () => {
      const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pms-program-build-")), "bin");
      const t0 = Date.now();
      await runLocal(
        process.execPath,
        [path.join(source, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.program.json", "--outDir", out],
        { cwd: source, timeoutMs: 10 * 60_000, log },
      );
      await runLocal(
        process.execPath,
        [path.join(out, "components", "program-build.js"), "--stamp", "--root", source, "--out", out],
        { cwd: source, timeoutMs: 60_000, log },
      );
      log(`program built from ${source} in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
      return out;
    })();
    programBuilds.set(source, p);
  }
  return p;
}

/**
 * The directory holding the real CLI and plugins: PMS_TOOLS_BIN, or what tools/real/build.sh
 * prints on its last stdout line (it builds on the first call and reuses its cache after).
 */
export function ensureTools(log: Log = () => undefined): Promise<string> {
  toolsPromise ??= (async () => {
    let bin = process.env.PMS_TOOLS_BIN;
    if (!bin) {
      if (!fs.existsSync(BUILD_SH)) {
        throw new Error(
          `the real Pulumi toolchain is missing: ${path.relative(REPO, BUILD_SH)} does not exist (or set PMS_TOOLS_BIN to a directory holding ${REQUIRED_TOOLS.join(", ")})`,
        );
      }
      const { stdout } = await runLocal("bash", [BUILD_SH], { log, timeoutMs: 60 * 60_000 });
      bin = stdout.trim().split("\n").pop() ?? "";
    }
    const missing = REQUIRED_TOOLS.filter((t) => !isExecutable(path.join(bin, t)));
    if (!bin.startsWith("/") || missing.length > 0) {
      throw new Error(
        `the real Pulumi toolchain is incomplete: ${missing.length > 0 ? missing.join(", ") : "every tool"} missing in '${bin}'. Run \`bash tools/real/build.sh\` and read its output.`,
      );
    }
    return bin;
  })();
  toolsPromise.catch(() => (toolsPromise = undefined));
  return toolsPromise;
}

/**
 * Where each tool in `bin` came from, as tools/real/build.sh recorded it (`stamps/<tool>.origin`
 * next to `bin/`): "upstream pulumi-command 1.2.1, built from …/shared/vendor/…", "our aws
 * provider (stands in for …)". A tool without a record (PMS_TOOLS_BIN pointing elsewhere) says so.
 */
export function toolOrigins(bin: string): Array<[string, string]> {
  return REQUIRED_TOOLS.map((tool) => {
    const file = path.join(bin, "..", "stamps", `${tool}.origin`);
    const origin = fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim() : `unknown (no ${file})`;
    return [tool, origin];
  });
}

/** A Moto server on a free loopback port, owned by this process. */
export class MotoServer {
  private constructor(
    readonly port: number,
    private readonly child: ChildProcess,
    private readonly logFile: string,
  ) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(dir: string, log: Log = () => undefined): Promise<MotoServer> {
    if (!fs.existsSync(MOTO_SH)) throw new Error(`Moto is missing: ${path.relative(REPO, MOTO_SH)} does not exist`);
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const logFile = path.join(dir, `moto-${port}.log`);
      const out = fs.openSync(logFile, "w");
      // moto.sh execs moto_server in the foreground: this PID is the server's.
      const child = spawn("bash", [MOTO_SH, "run", String(port)], { stdio: ["ignore", out, out], detached: true });
      fs.closeSync(out);
      const server = new MotoServer(port, child, logFile);
      liveChildren.add(child);
      installExitHook();
      try {
        await server.waitReady(60_000);
        log(`moto on ${server.endpoint} (pid ${child.pid})`);
        return server;
      } catch (err) {
        await server.stop();
        const text = fs.readFileSync(logFile, "utf8");
        if (attempt < 3 && /address already in use/i.test(text)) continue;
        throw new Error(`Moto did not start on 127.0.0.1:${port}: ${String(err)}\n${text.slice(-2000)}`);
      }
    }
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`moto.sh exited with ${this.child.exitCode}`);
      try {
        const r = await fetch(`${this.endpoint}/moto-api/`, { signal: AbortSignal.timeout(2000) });
        await r.arrayBuffer();
        return;
      } catch {
        await sleep(250);
      }
    }
    throw new Error(`no answer within ${timeoutMs / 1000}s`);
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
    liveChildren.delete(this.child);
  }

  log(): string {
    return fs.readFileSync(this.logFile, "utf8");
  }
}

/**
 * An `ssh-agent -D` of this process on a socket in `dir`: the stand-in for the deploy job's agent.
 * Ended by its PID (stop(), or the exit hook), never by name.
 */
export class SshAgent {
  private constructor(
    readonly socket: string,
    private readonly child: ChildProcess,
    private readonly keyDir: string,
  ) {}

  static async start(dir: string, log: Log = () => undefined): Promise<SshAgent> {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const socket = path.join(dir, "agent.sock");
    // -D: stays in the foreground, so this child's PID is the agent's (and its process group's).
    const child = spawn("ssh-agent", ["-D", "-a", socket], { stdio: "ignore", detached: true });
    liveChildren.add(child);
    installExitHook();
    const agent = new SshAgent(socket, child, dir);
    const deadline = Date.now() + 10_000;
    while (!fs.existsSync(socket)) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await agent.stop();
        throw new Error(`ssh-agent did not create ${socket} (exit ${child.exitCode})`);
      }
      await sleep(50);
    }
    // The socket file appears at bind(), before the agent listens or serves: under load an
    // ssh-add in that gap is refused (seen in CI). Ready means `ssh-add -l` gets an answer
    // (exit 0: keys, 1: none); 2 is "cannot connect".
    for (;;) {
      const probe = await runLocal("ssh-add", ["-l"], {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", SSH_AUTH_SOCK: socket },
        timeoutMs: 10_000,
        rejectOnFailure: false,
      });
      if (probe.code === 0 || probe.code === 1) break;
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        const how = child.signalCode ?? child.exitCode ?? "still running";
        await agent.stop();
        throw new Error(`ssh-agent on ${socket} does not answer (agent: ${how}): ${probe.stderr.trim()}`);
      }
      await sleep(50);
    }
    log(`ssh-agent on ${socket} (pid ${child.pid})`);
    return agent;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** `ssh-add`s a private key given as text (written 0600 in the agent's own directory first). */
  async add(privateKey: string): Promise<void> {
    const file = path.join(this.keyDir, `key-${fs.readdirSync(this.keyDir).length}`);
    fs.writeFileSync(file, privateKey.endsWith("\n") ? privateKey : `${privateKey}\n`, { mode: 0o600 });
    try {
      await runLocal("ssh-add", ["-q", file], {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", SSH_AUTH_SOCK: this.socket },
        timeoutMs: 30_000,
      });
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  /** The agent's keys as `ssh-add -l` prints them (fingerprints, never key material). */
  async list(): Promise<string> {
    const r = await runLocal("ssh-add", ["-l"], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", SSH_AUTH_SOCK: this.socket },
      timeoutMs: 30_000,
      rejectOnFailure: false,
    });
    return r.stdout;
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
    liveChildren.delete(this.child);
  }
}

/** A stack of this project on a local backend, driven by the real CLI. */
/** The program files of a workspace: what installProgram copies from a checkout (the stack files stay). */
const PROGRAM_FILES = ["Pulumi.yaml", "index.ts", "package.json", "tsconfig.json", "tsconfig.program.json", "main.js"];
const PROGRAM_DIRS = ["components", "agent", "bin", "node_modules"];

/** Puts checkout `source`'s program into `workspace`, as the CLI will run it. */
function installProgram(source: string, workspace: string, build: string | undefined): void {
  for (const f of PROGRAM_FILES) {
    if (["tsconfig.program.json", "main.js"].includes(f) && !fs.existsSync(path.join(source, f))) continue;
    fs.copyFileSync(path.join(source, f), path.join(workspace, f));
  }
  // The program's own files, unchanged (and its dependencies as installed by npm ci); agent/
  // holds the host agent the program sends and the options table it builds each rollout command from.
  for (const d of ["components", "agent"]) {
    // An older checkout (a bench baseline) may predate agent/.
    if (d === "agent" && !fs.existsSync(path.join(source, d))) continue;
    fs.cpSync(path.join(source, d), path.join(workspace, d), {
      recursive: true,
      filter: (src) => !/(^|\/)(__pycache__|\.mypy_cache|\.ruff_cache)(\/|$)/.test(src),
    });
  }
  // Its build, as `npm run build:program` leaves it (checked against these sources on every run).
  if (build) fs.cpSync(build, path.join(workspace, "bin"), { recursive: true });
  fs.symlinkSync(path.join(source, "node_modules"), path.join(workspace, "node_modules"));
}

export class PulumiStack {
  readonly calls: CliResult[] = [];
  /** Every secret value the stack held at any point (supplied, generated, SSH key lines). */
  private readonly secretValues = new Set<string>();
  /** Config applied so far: full key -> JSON of the value. */
  private applied = new Map<string, string>();
  private lastState: StateResource[] = [];
  private disposed = false;
  /** This stack's ssh-agent (the deploy job's stand-in); started by useAgent()/setConfig(). */
  private sshAgent: SshAgent | undefined;
  /** Keys already loaded into the agent. */
  private readonly agentKeys = new Set<string>();
  /** Applied after the agent's SSH_AUTH_SOCK: a test may point SSH_AUTH_SOCK elsewhere. */
  extraEnv: Record<string, string>;

  private constructor(
    readonly stack: string,
    readonly dir: string,
    readonly workspace: string,
    readonly bin: string,
    readonly moto: MotoServer,
    private readonly log: Log,
    env: Record<string, string>,
  ) {
    this.extraEnv = { ...env };
  }

  /** Builds (or reuses) the tools, starts Moto, creates the workspace, logs in and inits the stack. */
  static async create(opts: StackOptions): Promise<PulumiStack> {
    const log = opts.log ?? (() => undefined);
    const bin = await ensureTools(log);
    const source = opts.source ?? REPO;
    const build = await programBuild(source, log);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pms-pulumi-${opts.stack}-`));
    const workspace = path.join(dir, "project");
    fs.mkdirSync(workspace);
    fs.mkdirSync(path.join(dir, "home"));
    fs.mkdirSync(path.join(dir, "backend"));
    fs.mkdirSync(path.join(dir, "events"));
    installProgram(source, workspace, build);
    let moto: MotoServer;
    try {
      moto = await MotoServer.start(dir, log);
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    const s = new PulumiStack(opts.stack, dir, workspace, bin, moto, log, opts.env ?? {});
    liveStacks.add(s);
    try {
      await s.mustRun(["login", `file://${path.join(dir, "backend")}`]);
      // Into this PULUMI_HOME's plugin cache at the versions the SDKs ask for, as a real
      // installation has them: found by name+version, with no "using ... from $PATH" warnings.
      for (const args of pluginInstallArgs(bin)) await s.mustRun(args);
      await s.mustRun(["stack", "init", opts.stack, "--secrets-provider", "passphrase"]);
      await s.mustRun(["config", "set", "aws:region", AWS_REGION]);
    } catch (err) {
      await s.dispose();
      throw err;
    }
    return s;
  }

  /**
   * Replaces the workspace's program with checkout `source`'s (an upgrade of the program: the
   * stack, its config and state stay).
   */
  async useProgram(source: string): Promise<void> {
    const build = await programBuild(source, this.log);
    for (const f of [...PROGRAM_FILES, ...PROGRAM_DIRS]) {
      fs.rmSync(path.join(this.workspace, f), { recursive: true, force: true });
    }
    installProgram(source, this.workspace, build);
  }

  /**
   * Starts this stack's ssh-agent if it is not running (every later CLI call gets its
   * SSH_AUTH_SOCK) and loads `privateKey` into it when given. Returns the agent.
   */
  async useAgent(privateKey?: string): Promise<SshAgent> {
    if (this.disposed) throw new Error("this stack was disposed");
    this.sshAgent ??= await SshAgent.start(path.join(this.dir, "ssh-agent"), this.log);
    if (privateKey !== undefined && !this.agentKeys.has(privateKey)) {
      this.noteSecret(privateKey);
      await this.sshAgent.add(privateKey);
      this.agentKeys.add(privateKey);
    }
    return this.sshAgent;
  }

  /** The agent's socket, when this stack has one. */
  get agentSocket(): string | undefined {
    return this.sshAgent?.socket;
  }

  /** The environment of every CLI call: tools first on PATH, hermetic Pulumi and AWS settings. */
  env(): NodeJS.ProcessEnv {
    const base = Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) => !k.startsWith("PULUMI_") && !k.startsWith("AWS_") && k !== "SSH_AUTH_SOCK",
      ),
    );
    return {
      ...base,
      PATH: `${this.bin}:${process.env.PATH ?? "/usr/bin:/bin"}`,
      PULUMI_HOME: path.join(this.dir, "home"),
      PULUMI_CONFIG_PASSPHRASE: "pms-host-test-passphrase",
      PULUMI_SKIP_UPDATE_CHECK: "1",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      // Plugins come from the plugin cache (above); the language host is found next to `pulumi`.
      PULUMI_IGNORE_AMBIENT_PLUGINS: "true",
      // Registers --event-log (the engine's JSON event stream; the Automation API reads the same).
      PULUMI_DEBUG_COMMANDS: "true",
      AWS_ENDPOINT_URL: this.moto.endpoint,
      AWS_ACCESS_KEY_ID: "testing",
      AWS_SECRET_ACCESS_KEY: "testing",
      AWS_REGION,
      AWS_DEFAULT_REGION: AWS_REGION,
      ...(this.sshAgent ? { SSH_AUTH_SOCK: this.sshAgent.socket } : {}),
      ...this.extraEnv,
    };
  }

  /**
   * Runs `pulumi ARGS` in the workspace and records it. `revealsSecrets` marks calls that print
   * secrets on purpose (--show-secrets): they are kept out of the leak scan.
   */
  async run(
    args: string[],
    opts: { stdin?: string; timeoutMs?: number; revealsSecrets?: boolean; eventLog?: boolean } = {},
  ): Promise<CliResult> {
    if (this.disposed) throw new Error("this stack was disposed");
    const full = ["--non-interactive", "--color", "never", ...args];
    const eventFile = opts.eventLog ? path.join(this.dir, "events", `${this.calls.length}.jsonl`) : undefined;
    if (eventFile) full.push("--event-log", eventFile);
    const t0 = Date.now();
    const tail = eventFile ? tailEvents(eventFile) : undefined;
    const r = await runLocal(path.join(this.bin, "pulumi"), full, {
      cwd: this.workspace,
      env: this.env(),
      stdin: opts.stdin,
      timeoutMs: opts.timeoutMs ?? 20 * 60_000,
      rejectOnFailure: false,
      log: this.log,
      // What a --show-secrets call prints must never reach a log.
      streamStdout: !opts.revealsSecrets,
    });
    const result: CliResult = {
      args: ["pulumi", ...full],
      code: r.code,
      stdout: r.stdout,
      stderr: r.stderr,
      output: r.stdout + r.stderr,
      ms: Date.now() - t0,
      events: eventFile ? readEvents(eventFile) : [],
      timedEvents: tail ? tail.stop() : [],
      startedAt: t0,
      timedOut: r.timedOut,
    };
    if (!opts.revealsSecrets) this.calls.push(result);
    const shown = args.map((a) => (a.length > 80 ? `${a.slice(0, 40)}...(${a.length} chars)` : a));
    this.log(`$ pulumi ${shown.join(" ")} -> exit ${r.code} in ${(result.ms / 1000).toFixed(1)}s`);
    return result;
  }

  private async mustRun(args: string[], stdin?: string): Promise<CliResult> {
    const r = await this.run(args, { stdin });
    if (r.code !== 0) throw new Error(`pulumi ${args.join(" ")} failed (exit ${r.code}):\n${r.output}`);
    return r;
  }

  /**
   * Makes the stack's config equal to `config` (top-level keys of this project; keys with a ':'
   * are used as they are). Only what changed since the last call is written. Every entry of
   * `secrets` is set with --secret, its value on stdin, unless listed in `plaintext` (to reproduce
   * an operator's mistake).
   *
   * `sshPrivateKey` is the deploy key, as the deploy job has it: loaded into this stack's
   * ssh-agent, never written to the config. To reproduce a stack that still has the retired
   * config key, list it in `plaintext` (written as plain text) or in `keyInConfig` (with --secret).
   */
  async setConfig(
    config: Record<string, unknown>,
    opts: { plaintext?: string[]; keyInConfig?: boolean } = {},
  ): Promise<void> {
    const plaintext = new Set(opts.plaintext ?? []);
    const wanted = new Map<string, string>();
    const values = new Map<string, unknown>();
    for (const [k, v] of Object.entries(config)) {
      if (v === undefined) continue;
      if (fullKey(k) === fullKey("sshPrivateKey") && !plaintext.has("sshPrivateKey") && !opts.keyInConfig) {
        if (typeof v !== "string") throw new Error("sshPrivateKey: the deploy key as text (OpenSSH or PEM)");
        await this.useAgent(v);
        continue;
      }
      const mistakes = [...plaintext].filter((p) => p.split(".")[0] === k);
      wanted.set(fullKey(k), JSON.stringify({ v, mistakes }));
      values.set(fullKey(k), v);
    }
    const removed = [...this.applied.keys()].filter((k) => !wanted.has(k));
    if (removed.length > 0) await this.mustRun(["config", "rm-all", ...removed]);
    const plainJson: Record<string, { value: string; objectValue?: unknown; secret: false }> = {};
    for (const [key, value] of values) {
      if (this.applied.get(key) === wanted.get(key)) continue;
      if (key === fullKey("sshPrivateKey")) {
        this.noteSecret(String(value));
        const flag = plaintext.has("sshPrivateKey") ? "--plaintext" : "--secret";
        await this.mustRun(["config", "set", flag, key], String(value));
      } else if (key === fullKey("secrets") && value !== null && typeof value === "object") {
        if (this.applied.has(key)) await this.mustRun(["config", "rm", key]);
        for (const [name, secret] of Object.entries(value as Record<string, unknown>)) {
          this.noteSecret(String(secret));
          const flag = plaintext.has(`secrets.${name}`) ? "--plaintext" : "--secret";
          await this.mustRun(["config", "set", flag, "--path", `${key}.${name}`], String(secret));
        }
      } else if (value !== null && typeof value === "object") {
        plainJson[key] = { value: JSON.stringify(value), objectValue: value, secret: false };
      } else {
        plainJson[key] = { value: String(value), secret: false };
      }
    }
    if (Object.keys(plainJson).length > 0) {
      // One call for every plain key; --json carries structure (lists, maps, numbers) as it is.
      await this.mustRun(["config", "set-all", "--json", JSON.stringify(plainJson)]);
    }
    this.applied = wanted;
  }

  /**
   * Replaces the stack file with `content` (e.g. the shipped Pulumi.dev.yaml), keeping this
   * stack's passphrase salt so its secrets stay readable. Config set through setConfig() is
   * forgotten: call setConfig() again to write it.
   */
  writeStackFile(content: string): void {
    const salt = /^encryptionsalt: .*$/m.exec(this.stackFile())?.[0];
    fs.writeFileSync(path.join(this.workspace, `Pulumi.${this.stack}.yaml`), salt ? `${salt}\n${content}` : content);
    this.applied = new Map();
  }

  /** The stack file as the CLI wrote it. */
  stackFile(): string {
    return fs.readFileSync(path.join(this.workspace, `Pulumi.${this.stack}.yaml`), "utf8");
  }

  preview(extra: string[] = []): Promise<CliResult> {
    return this.run(["preview", "--diff", ...extra], { eventLog: true });
  }

  /** `pulumi up --yes` (preview and update, as CI runs it); then learns the state's secrets. */
  async up(extra: string[] = [], opts: { timeoutMs?: number } = {}): Promise<CliResult> {
    const r = await this.run(["up", "--yes", ...extra], { eventLog: true, timeoutMs: opts.timeoutMs });
    await this.exportState();
    return r;
  }

  async destroy(extra: string[] = []): Promise<CliResult> {
    const r = await this.run(["destroy", "--yes", ...extra], { eventLog: true });
    await this.exportState();
    return r;
  }

  async refresh(extra: string[] = []): Promise<CliResult> {
    const r = await this.run(["refresh", "--yes", ...extra], { eventLog: true });
    await this.exportState();
    return r;
  }

  /** `pulumi stack output --json` (with --show-secrets if asked: such calls are not scanned). */
  async stackOutput(showSecrets = false): Promise<Record<string, unknown>> {
    const r = await this.run(["stack", "output", "--json", ...(showSecrets ? ["--show-secrets"] : [])], {
      revealsSecrets: showSecrets,
    });
    if (r.code !== 0) throw new Error(`pulumi stack output failed:\n${r.output}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  }

  /**
   * `pulumi stack export --show-secrets`: the checkpoint's resources with secrets decrypted.
   * Every RandomPassword result seen is remembered for the leak scan.
   */
  async exportState(): Promise<StateResource[]> {
    const r = await this.run(["stack", "export", "--show-secrets"], { revealsSecrets: true });
    if (r.code !== 0) throw new Error(`pulumi stack export failed:\n${r.output}`);
    const doc = JSON.parse(r.stdout) as { deployment?: { resources?: RawResource[] } };
    this.lastState = (doc.deployment?.resources ?? []).map((res) => ({
      urn: res.urn,
      type: res.type,
      inputs: reveal(res.inputs ?? {}) as Record<string, unknown>,
      outputs: reveal(res.outputs ?? {}) as Record<string, unknown>,
    }));
    for (const res of this.lastState) {
      if (res.type === "random:index/randomPassword:RandomPassword" && typeof res.outputs.result === "string") {
        this.noteSecret(res.outputs.result);
      }
    }
    return this.lastState;
  }

  /** Raw `pulumi stack export` (secrets encrypted), e.g. for a backup before a restore. */
  async exportFile(file: string): Promise<void> {
    const r = await this.run(["stack", "export", "--file", file]);
    if (r.code !== 0) throw new Error(`pulumi stack export failed:\n${r.output}`);
  }

  /** The agent of this workspace's copy of the program (the bytes hosts receive before the env file). */
  get rolloutScript(): string {
    return agentBundle(path.join(this.workspace, "agent"));
  }

  /** The resources of the last exported state. */
  get state(): StateResource[] {
    return this.lastState;
  }

  /** The resource named `name` (last URN segment) in the last exported state. */
  resource(name: string, type?: string): StateResource | undefined {
    return this.lastState.find((r) => r.urn.endsWith(`::${name}`) && (!type || r.type === type));
  }

  /** The URN of the live resource named `name`. */
  urn(name: string): string {
    const r = this.resource(name);
    if (!r) throw new Error(`no resource ${name} in the state`);
    return r.urn;
  }

  /** The generated value of `key` in the state. */
  generatedValue(key: string): string {
    const v = this.resource(`generated-${key}`, "random:index/randomPassword:RandomPassword")?.outputs.result;
    if (typeof v !== "string") throw new Error(`no generated value for ${key} in the state`);
    return v;
  }

  /** The env file the state says `host` received (its rollout's stdin after the script). */
  sentEnvFile(host: string): string {
    const stdin = this.resource(`${host}-rollout`, "command:remote:Command")?.inputs.stdin;
    if (typeof stdin !== "string") throw new Error(`no rollout of ${host} in the state`);
    const script = this.rolloutScript;
    if (!stdin.startsWith(script)) throw new Error(`${host}'s rollout stdin does not start with the script`);
    // The program ends stdin with a marker line the script checks and drops.
    return stdin.slice(script.length).replace(/# pms-secrets-end sha256=[0-9a-f]+\n?$/, "");
  }

  /** Remembers a value the leak scan must never find (long enough lines of it, for keys). */
  noteSecret(value: string): void {
    for (const line of value.split("\n")) {
      const t = line.trim();
      if (t.length >= 12 && !t.startsWith("-----")) this.secretValues.add(t);
    }
  }

  get secrets(): string[] {
    return [...this.secretValues];
  }

  /** Every recorded call whose output contains a known secret value (none is the only good answer). */
  leaks(): string[] {
    const found: string[] = [];
    for (const call of this.calls) {
      for (const s of this.secretValues) {
        if (call.output.includes(s)) found.push(`\`${call.args.slice(4).join(" ")}\` printed ${s.slice(0, 6)}...`);
      }
    }
    return found;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    liveStacks.delete(this);
    // A CLI killed outright (a lost runner, runbook §6) leaves its plugins running: the engine
    // starts each in its own process group, so a SIGKILL to the CLI's group misses them. They
    // are this stack's by their PULUMI_HOME; ended here by PID.
    for (const pid of processesWithEnv(`PULUMI_HOME=${path.join(this.dir, "home")}`)) {
      this.log(`ending pid ${pid}, left running by a killed CLI: ${commandOf(pid)}`);
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
    await this.sshAgent?.stop();
    await this.moto.stop();
    if (!process.env.PMS_KEEP_PULUMI_DIR) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The steps of a run, from its event log: one entry per resource step that finished or failed.
 * A preview's steps are its plan; an `up`'s are what it did (its own preview phase left out).
 */
export function stepsOf(r: CliResult): Step[] {
  const planning = r.args.includes("preview");
  const steps: Step[] = [];
  for (const e of r.events) {
    const done = e.resOutputsEvent;
    const failed = e.resOpFailedEvent;
    const md = done?.metadata ?? failed?.metadata;
    if (!md || (done !== undefined && Boolean(done.planning) !== planning)) continue;
    steps.push({ name: md.urn.slice(md.urn.lastIndexOf("::") + 2), type: md.type, op: md.op, ok: !failed });
  }
  return steps;
}

/**
 * Where resource `name`'s first step of an `up` began ("pre") or first finished ("done") in the
 * event stream: for ordering claims such as "host A's rollout finished before host B's started".
 * A replacement's first step is the create-replacement that runs the command (its delete-replaced
 * comes at the end of the run).
 */
export function stepSequence(r: CliResult, name: string, kind: "pre" | "done"): number {
  const e = r.events.find((ev) => {
    const step = kind === "pre" ? ev.resourcePreEvent : ev.resOutputsEvent;
    return step !== undefined && !step.planning && step.metadata.urn.endsWith(`::${name}`);
  });
  if (!e) throw new Error(`the event log of \`pulumi ${r.args.slice(4).join(" ")}\` has no ${kind} event of ${name}`);
  return e.sequence;
}

/** `op name` of every step on a command resource that did something (not "same"). */
export function commandSteps(r: CliResult): string[] {
  return stepsOf(r)
    .filter((s) => s.type === "command:remote:Command" && s.op !== "same")
    .map((s) => `${s.op} ${s.name}${s.ok ? "" : " FAILED"}`);
}

/** The commands a run executed on hosts: create/update/create-replacement steps of rollouts. */
export function ran(r: CliResult): string[] {
  return commandSteps(r).filter((s) => /^(create|update|create-replacement) /.test(s));
}

/** Fails with the CLI's whole output unless the run exited 0; returns the run. */
export function assertOk(r: CliResult): CliResult {
  assert.equal(r.code, 0, `pulumi ${r.args.slice(4).join(" ")} failed:\n${r.output}`);
  return r;
}

/** Debian's AWS CLI (package awscli), which the runbook's commands use. */
export const AWS_CLI = "/usr/bin/aws";

export interface ShellResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * bash in the project directory as an operator has it: the real `pulumi` of `stack` on PATH,
 * `aws` pointed at the stack's Moto, `set -euo pipefail`, and "yes" at the CLI's confirmation
 * prompts (there is no terminal here). `stdin` is the operator's typing; a script that exits
 * without reading it is not an error (its exit code tells the story).
 */
export function operatorShell(stack: PulumiStack, script: string, stdin = ""): Promise<ShellResult> {
  return new Promise((resolve, reject) => {
    const env = {
      ...stack.env(),
      AWS_CLI_BIN: AWS_CLI,
      AWS_PAGER: "",
      MOTO_ENDPOINT: stack.moto.endpoint,
      PULUMI_SKIP_CONFIRMATIONS: "true",
    };
    const prelude = 'aws() { "$AWS_CLI_BIN" --endpoint-url "$MOTO_ENDPOINT" "$@"; }\nset -euo pipefail\n';
    const child = spawn("bash", ["-c", prelude + script], { cwd: stack.workspace, env, stdio: "pipe" });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdin.on("error", () => undefined);
    child.on("error", (e) => reject(new Error(`cannot run bash: ${e.message}`)));
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

/** The `Resources:` summary counts of a run (e.g. { same: 7, replace: 4 }). */
export function changesOf(r: CliResult): Record<string, number> {
  for (const e of r.events) if (e.summaryEvent) return e.summaryEvent.resourceChanges ?? {};
  return {};
}

// ---------------------------------------------------------------------------------------------

interface RawResource {
  urn: string;
  type: string;
  inputs?: unknown;
  outputs?: unknown;
}

/** The signature Pulumi puts on secret values in a checkpoint. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/** Unwraps `--show-secrets` secret envelopes ({sig, plaintext: JSON}) into their values. */
function reveal(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reveal);
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (o[SECRET_SIG] !== undefined && typeof o.plaintext === "string") return reveal(JSON.parse(o.plaintext));
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, reveal(x)]));
  }
  return v;
}

function fullKey(k: string): string {
  return k.includes(":") ? k : `${PROJECT}:${k}`;
}

function readEvents(file: string): EngineEvent[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as EngineEvent);
}

/** One line of an event log as the harness saw it arrive. */
export interface TimedEvent {
  /** ms since the epoch when the line was first read. */
  at: number;
  event: EngineEvent;
}

/**
 * Follows an event log file while the CLI writes it (every 20 ms). `pulumi up` writes its preview's
 * events and then its update's into the same file, re-created (truncated) for the update: each
 * write of the file from its start is a segment of its own. `stop()` reads what is left and
 * returns the segments, each line with the time it was first seen.
 */
export function tailEvents(file: string): { stop: () => TimedEvent[][] } {
  const segments: TimedEvent[][] = [];
  let current: TimedEvent[] | undefined;
  let offset = 0;
  let pending = "";
  const poll = (): void => {
    let fd: number;
    try {
      fd = fs.openSync(file, "r");
    } catch {
      return; // not created yet
    }
    try {
      if (fs.fstatSync(fd).size < offset || current === undefined) {
        // Created or re-created since the last look: a new segment from the file's start.
        current = [];
        segments.push(current);
        offset = 0;
        pending = "";
      }
      const buf = Buffer.alloc(1 << 16);
      for (;;) {
        const n = fs.readSync(fd, buf, 0, buf.length, offset);
        if (n <= 0) break;
        offset += n;
        pending += buf.subarray(0, n).toString("utf8");
      }
    } finally {
      fs.closeSync(fd);
    }
    const now = Date.now();
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const l of lines) {
      if (l.trim() === "") continue;
      try {
        current.push({ at: now, event: JSON.parse(l) as EngineEvent });
      } catch {
        // a line read across a re-creation of the file: its segment is not timed
      }
    }
  };
  const timer = setInterval(poll, 20);
  return {
    stop: () => {
      clearInterval(timer);
      poll();
      return segments;
    },
  };
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

interface LocalResult {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * Runs a local command in its own process group (so a timeout can end it and the plugins it
 * started, by that group's id), streaming its lines to `log`.
 */
function runLocal(
  cmd: string,
  args: string[],
  opts: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    stdin?: string;
    timeoutMs: number;
    log?: Log;
    rejectOnFailure?: boolean;
    streamStdout?: boolean;
  },
): Promise<LocalResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    liveChildren.add(child);
    installExitHook();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const lineLogger = () => {
      let pending = "";
      return (d: Buffer) => {
        pending += d.toString("utf8");
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const l of lines) opts.log?.(`  ${l}`);
      };
    };
    const logErr = lineLogger();
    const logOut = lineLogger();
    const timer = setTimeout(() => {
      timedOut = true;
      void stopChild(child);
    }, opts.timeoutMs);
    child.stdout.on("data", (d: Buffer) => {
      out.push(d);
      if (opts.streamStdout || opts.rejectOnFailure !== false) logOut(d);
    });
    child.stderr.on("data", (d: Buffer) => {
      err.push(d);
      logErr(d);
    });
    child.stdin.on("error", () => undefined);
    child.on("error", (e) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      const r: LocalResult = {
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        timedOut,
      };
      if (opts.rejectOnFailure !== false && r.code !== 0) {
        reject(new Error(`${path.basename(cmd)} ${args.join(" ")} failed (exit ${r.code}):\n${r.stderr.slice(-3000)}`));
      } else resolve(r);
    });
    child.stdin.end(opts.stdin ?? "");
  });
}

/** PIDs of the processes (other than this one) whose environment holds `entry` exactly. */
export function processesWithEnv(entry: string): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(entry)) pids.push(pid);
    } catch {
      /* gone, or not ours to read */
    }
  }
  return pids;
}

function commandOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0").join(" ").trim();
  } catch {
    return "?";
  }
}

/** SIGINT (the CLI cancels cleanly), then SIGTERM, then SIGKILL to the child's process group. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const pid = child.pid;
  const exited = new Promise<void>((res) => child.once("exit", () => res()));
  for (const [sig, wait] of [
    ["SIGINT", 5000],
    ["SIGTERM", 5000],
    ["SIGKILL", 5000],
  ] as const) {
    try {
      process.kill(-pid, sig);
    } catch {
      return; // the group is gone
    }
    if (await Promise.race([exited.then(() => true), sleep(wait).then(() => false)])) return;
  }
}

async function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address();
      server.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

const liveChildren = new Set<ChildProcess>();
const liveStacks = new Set<PulumiStack>();
let hookInstalled = false;

/** On exit, end what this module started (Moto, a CLI still running), by process group id. */
function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  process.on("exit", () => {
    for (const child of liveChildren) {
      if (child.pid === undefined || child.exitCode !== null) continue;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        try {
          process.kill(child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
    for (const s of liveStacks)
      if (!process.env.PMS_KEEP_PULUMI_DIR) fs.rmSync(s.dir, { recursive: true, force: true });
  });
}
