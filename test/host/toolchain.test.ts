/**
 * The real Pulumi toolchain of tools/real/ works end to end, before any host scenario relies on
 * it: tools/real/build.sh builds (or reuses) the CLI, the upstream command and random providers and
 * the upstream Node.js language host (from ../shared/vendor, issue 17) and our aws stand-in, a
 * second run is all cache hits, and the real CLI runs a TypeScript program through the language host:
 * `pulumi preview`, `up --yes`, `destroy --yes` on a local backend with a passphrase-encrypted
 * config secret, program errors reported the way the upstream host reports them, and the policy
 * pack in policy/ blocking an `up` through `--policy-pack`.
 *
 *   node --import tsx --test test/host/toolchain.test.ts
 *
 * Needs Go (first build: minutes; cached after, see tools/real/README.md). PMS_TOOLS_CACHE picks
 * the cache directory, as for build.sh.
 */
import { type SpawnOptions, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { pluginInstallArgs, RESOURCE_PLUGINS } from "./pulumi-cli";

const REPO = path.resolve(__dirname, "..", "..");
const BUILD_SH = path.join(REPO, "tools", "real", "build.sh");
const POLICY_DIR = path.join(REPO, "policy");
/** Every Go tool build.sh makes; moto (the AWS emulator) is not needed here. */
const TOOLS = [
  "pulumi",
  "pulumi-language-nodejs",
  "pulumi-resource-command",
  "pulumi-resource-random",
  "pulumi-resource-aws",
] as const;
/** The CLI release tools/real/versions.sh pins. */
const PINNED_CLI = "v3.248.0";

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  /** What a person running the command sees. */
  output: string;
  ms: number;
}

/** Runs a command to completion; `input` goes to stdin (how secrets travel), never argv. */
function run(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs: number },
): Promise<Result> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = { cwd: opts.cwd, env: opts.env, stdio: ["pipe", "pipe", "pipe"] };
    const child = spawn(cmd, args, spawnOpts);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      reject(new Error(`${cmd} ${args.join(" ")} did not finish within ${opts.timeoutMs / 1000}s\n${stdout}${stderr}`));
    }, opts.timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, output: stdout + stderr, ms: Date.now() - started });
    });
    child.stdin?.on("error", () => undefined); // exited without reading it: the exit code tells
    child.stdin?.end(opts.input ?? "");
  });
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The last stdout line of build.sh, which is the bin dir by contract. */
function binDirOf(r: Result): string {
  return r.stdout.trim().split("\n").pop() ?? "";
}

/** A throwaway Pulumi project on a local backend, driven by the CLI in `bin`. */
class Workspace {
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(bin: string, files: Record<string, string>) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "pms-toolchain-"));
    const project = path.join(this.dir, "project");
    fs.mkdirSync(project);
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(project, name), text);
    // The program resolves @pulumi/* from the repo's installed node_modules, as an operator's would.
    fs.symlinkSync(path.join(REPO, "node_modules"), path.join(project, "node_modules"));
    fs.mkdirSync(path.join(this.dir, "state"));
    const env: NodeJS.ProcessEnv = {};
    // Nothing from the caller's Pulumi setup (a token, another backend) may leak into this run.
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PULUMI_")) env[k] = v;
    this.env = {
      ...env,
      PATH: `${bin}${path.delimiter}${process.env.PATH ?? ""}`,
      PULUMI_HOME: path.join(this.dir, "home"),
      PULUMI_CONFIG_PASSPHRASE: "toolchain-test-passphrase",
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      // Providers come from PULUMI_HOME, where `pulumi plugin install` puts them, as on a user's
      // machine; ambient ones would add "using pulumi-resource-X from $PATH" warnings to every run.
      // The language host is found next to `pulumi`, like the bundled one.
      PULUMI_IGNORE_AMBIENT_PLUGINS: "true",
    };
    this.bin = bin;
  }

  private readonly bin: string;

  get project(): string {
    return path.join(this.dir, "project");
  }

  pulumi(args: readonly string[], input?: string): Promise<Result> {
    return run("pulumi", [...args, "--non-interactive", "--color", "never"], {
      cwd: this.project,
      env: this.env,
      input,
      timeoutMs: 5 * 60_000,
    });
  }

  /** Runs a CLI command that must succeed; the assertion message carries its whole output. */
  async ok(args: readonly string[], input?: string): Promise<Result> {
    const r = await this.pulumi(args, input);
    assert.equal(r.code, 0, `pulumi ${args.join(" ")} failed:\n${r.output}`);
    return r;
  }

  async init(stack: string): Promise<void> {
    for (const args of pluginInstallArgs(this.bin)) await this.ok(args);
    await this.ok(["login", `file://${path.join(this.dir, "state")}`]);
    await this.ok(["stack", "init", stack]);
  }

  /** Every file of the local backend (state, history, backups), as text. */
  backendText(): string {
    const out: string[] = [];
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else out.push(fs.readFileSync(p, "utf8"));
      }
    };
    walk(path.join(this.dir, "state"));
    return out.join("\n");
  }

  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

const TSCONFIG = JSON.stringify({
  compilerOptions: { strict: true, target: "ES2022", module: "commonjs", moduleResolution: "node", skipLibCheck: true },
});

function projectFiles(name: string, program: string): Record<string, string> {
  return {
    "Pulumi.yaml": `name: ${name}\nruntime:\n  name: nodejs\n  options:\n    packagemanager: npm\n    typescript: true\n`,
    "package.json": JSON.stringify({ name, version: "0.0.0", private: true, main: "index.ts" }),
    "tsconfig.json": TSCONFIG,
    "index.ts": program,
  };
}

/** Uses only @pulumi/pulumi: a config secret, a plain config value, outputs, and three ways to fail. */
const SECRET_PROGRAM = `import * as pulumi from "@pulumi/pulumi";
const cfg = new pulumi.Config();
const token = cfg.requireSecret("token");
export const message = "hello " + cfg.require("greeting") + " from " + pulumi.getStack();
export const tokenLength = token.apply((t) => t.length);
export const tokenOut = token;
const fail = cfg.get("fail");
if (fail === "runError") throw new pulumi.RunError("greeting is not allowed: set greeting to a known word");
if (fail === "exception") throw new Error("unexpected failure in the program");
if (fail === "exit") process.exit(3);
`;

/** The two upstream providers the program uses, each doing its real work: a password and a local command. */
const UPSTREAM_PLUGINS_PROGRAM = `import * as command from "@pulumi/command";
import * as random from "@pulumi/random";
const pw = new random.RandomPassword("pw", { length: 24, special: false });
const echo = new command.local.Command("echo", { create: "printf ok", logging: "none" });
export const pwLength = pw.result.apply((r) => r.length);
export const said = echo.stdout;
`;

/** A generated secret far too short for the policy pack's mandatory generated-secret-strength. */
const WEAK_SECRET_PROGRAM = `import * as random from "@pulumi/random";
const weak = new random.RandomPassword("generated-SECRET_KEY", { length: 8, special: false });
export const weakLength = weak.length;
`;

let bin = "";
let builtByUs = false;

describe("real Pulumi toolchain (tools/real)", { concurrency: false }, () => {
  before(async () => {
    const r = await run("bash", [BUILD_SH, ...TOOLS], { env: process.env, timeoutMs: 60 * 60_000 });
    assert.equal(r.code, 0, `tools/real/build.sh failed:\n${r.stderr}`);
    bin = binDirOf(r);
    builtByUs = !/using the pulumi already on PATH/.test(r.stderr);
  });

  test("build.sh prints the bin dir last, holding every tool; a second run is all cache hits", async () => {
    assert.ok(path.isAbsolute(bin), `last stdout line of build.sh is not a directory: '${bin}'`);
    for (const tool of TOOLS) assert.ok(isExecutable(path.join(bin, tool)), `${tool} is missing in ${bin}`);

    const again = await run("bash", [BUILD_SH, ...TOOLS], { env: process.env, timeoutMs: 10 * 60_000 });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(binDirOf(again), bin);
    for (const tool of TOOLS.filter((t) => t !== "pulumi" || builtByUs)) {
      assert.match(again.stderr, new RegExp(`\\] ${tool}: cached`), `${tool} was rebuilt:\n${again.stderr}`);
    }
    assert.doesNotMatch(again.stderr, /: building /);
    // Progress lines carry elapsed seconds.
    assert.match(again.stderr, /^\[build\.sh +\d+s\] done$/m);
    assert.ok(again.ms < 60_000, `a fully cached build.sh took ${again.ms} ms`);
  });

  test("the CLI is the pinned real release and the language host is upstream's at the SDK's version", async () => {
    const ws = new Workspace(bin, projectFiles("toolchainversion", SECRET_PROGRAM));
    try {
      const v = await run("pulumi", ["version"], { env: ws.env, timeoutMs: 60_000 });
      assert.equal(v.code, 0, v.output);
      if (builtByUs) assert.equal(v.stdout.trim(), PINNED_CLI);
      else assert.match(v.stdout.trim(), /^v3\.\d+\.\d+/);
      const host = await run(path.join(bin, "pulumi-language-nodejs"), ["-version"], { timeoutMs: 60_000 });
      assert.match(host.stdout.trim(), /^v?3\.248\.0$/);
    } finally {
      ws.dispose();
    }
  });

  test("preview, up and destroy of a TypeScript program with a config secret", async () => {
    const ws = new Workspace(bin, projectFiles("toolchainsecret", SECRET_PROGRAM));
    const secret = `tok-${randomBytes(12).toString("hex")}`;
    try {
      await ws.init("dev");
      // The secret goes in on stdin; argv (visible in ps) only names the key.
      await ws.ok(["config", "set", "--secret", "token"], secret);
      await ws.ok(["config", "set", "greeting", "world"]);
      const stackFile = fs.readFileSync(path.join(ws.project, "Pulumi.dev.yaml"), "utf8");
      assert.match(stackFile, /toolchainsecret:token:\s*\n\s*secure: /);
      assert.ok(!stackFile.includes(secret), "the stack file holds the secret in clear text");

      const preview = await ws.ok(["preview"]);
      assert.match(preview.output, /Previewing update \(dev\)/);
      assert.match(preview.output, /\+ {2}pulumi:pulumi:Stack toolchainsecret-dev create/);
      assert.match(preview.output, /message\s*: "hello world from dev"/);
      assert.match(preview.output, /tokenOut\s*: \[secret\]/);
      assert.match(preview.output, /Resources:\s*\n\s*\+ 1 to create/);

      const up = await ws.ok(["up", "--yes"]);
      assert.match(up.output, /Updating \(dev\)/);
      assert.match(up.output, /message\s*: "hello world from dev"/);
      assert.match(up.output, /tokenLength\s*: \[secret\]/);
      assert.match(up.output, /tokenOut\s*: \[secret\]/);
      assert.match(up.output, /Resources:\s*\n\s*\+ 1 created/);

      // The program got the decrypted value (PULUMI_CONFIG) and knew it was secret
      // (PULUMI_CONFIG_SECRET_KEYS): the output is right and stored encrypted.
      const shown = await ws.ok(["stack", "output", "--json", "--show-secrets"]);
      assert.deepEqual(JSON.parse(shown.stdout), {
        message: "hello world from dev",
        tokenLength: secret.length,
        tokenOut: secret,
      });
      const plain = await ws.ok(["stack", "output", "--json"]);
      assert.equal((JSON.parse(plain.stdout) as Record<string, unknown>).tokenOut, "[secret]");
      assert.ok(!ws.backendText().includes(secret), "the local backend stores the secret in clear text");

      const noop = await ws.ok(["up", "--yes"]);
      assert.match(noop.output, /Resources:\s*\n\s*1 unchanged/);

      const destroy = await ws.ok(["destroy", "--yes"]);
      assert.match(destroy.output, /Destroying \(dev\)/);
      assert.match(destroy.output, /Resources:\s*\n\s*- 1 deleted/);

      for (const r of [preview, up, noop, destroy]) {
        assert.ok(!r.output.includes(secret), "the CLI printed the secret");
        assert.doesNotMatch(r.output, /warning:/, "an installed toolchain run warns about nothing");
      }
    } finally {
      ws.dispose();
    }
  });

  test("the upstream command and random plugins run at exactly the versions the SDK asks for: no version warning", async () => {
    const ws = new Workspace(bin, projectFiles("toolchainupstream", UPSTREAM_PLUGINS_PROGRAM));
    try {
      await ws.init("dev");
      const ls = await ws.ok(["plugin", "ls"]);
      for (const [name, version] of RESOURCE_PLUGINS) {
        assert.match(
          ls.output,
          new RegExp(`^${name}\\s+resource\\s+${version.replace(/\./g, "\\.")}\\s`, "m"),
          ls.output,
        );
      }
      const runs = [await ws.ok(["preview"]), await ws.ok(["up", "--yes"]), await ws.ok(["up", "--yes"])];
      assert.match(runs[1].output, /Resources:\s*\n\s*\+ 3 created/);
      assert.match(runs[1].output, /said\s*: "ok"/);
      assert.match(runs[2].output, /Resources:\s*\n\s*3 unchanged/);
      for (const r of runs) {
        // The engine warns "... is expected to have version X, but has Y" when a plugin is older
        // than its SDK package asks for: the pins in package.json and versions.sh must agree.
        assert.doesNotMatch(r.output, /expected to have version|warning:/, r.output);
      }
      const shown = await ws.ok(["stack", "output", "--json", "--show-secrets"]);
      assert.equal((JSON.parse(shown.stdout) as { pwLength: number }).pwLength, 24);
    } finally {
      ws.dispose();
    }
  });

  test("program failures reach the CLI as the upstream language host reports them", async () => {
    const ws = new Workspace(bin, projectFiles("toolchainfail", SECRET_PROGRAM));
    try {
      await ws.init("dev");
      await ws.ok(["config", "set", "--secret", "token"], "x");
      await ws.ok(["config", "set", "greeting", "world"]);

      // RunError: the SDK prints the message and exits 32; the host answers "bail", so the CLI
      // adds nothing (no stack trace, no "exited with" line).
      await ws.ok(["config", "set", "fail", "runError"]);
      const runError = await ws.pulumi(["up", "--yes"]);
      assert.notEqual(runError.code, 0);
      assert.match(runError.output, /error: greeting is not allowed: set greeting to a known word/);
      assert.doesNotMatch(runError.output, /\n\s+at /);
      assert.doesNotMatch(runError.output, /non-zero exit code/);

      // Any other exception: the SDK reports it with its stack trace, then bails the same way.
      await ws.ok(["config", "set", "fail", "exception"]);
      const exception = await ws.pulumi(["preview"]);
      assert.notEqual(exception.code, 0);
      assert.match(
        exception.output,
        /failed with an unhandled exception:\s*\n\s*Error: unexpected failure in the program/,
      );

      // A program that dies on its own: the host's RunResponse error names the exit code.
      await ws.ok(["config", "set", "fail", "exit"]);
      const exit = await ws.pulumi(["preview"]);
      assert.notEqual(exit.code, 0);
      assert.match(exit.output, /error: an unhandled error occurred: Program exited with non-zero exit code: 3/);

      // Nothing was recorded by the failed up.
      const exported = await ws.ok(["stack", "export"]);
      assert.doesNotMatch(exported.stdout, /pulumi:pulumi:Stack/);
    } finally {
      ws.dispose();
    }
  });

  test("the policy pack runs under the CLI and a mandatory violation blocks up", async () => {
    const ws = new Workspace(bin, projectFiles("toolchainpolicy", WEAK_SECRET_PROGRAM));
    try {
      await ws.init("dev");
      const policyArgs = ["--policy-pack", POLICY_DIR, "--policy-pack-config", path.join(POLICY_DIR, "config.json")];
      // Without the pack the program is fine: the random plugin is found and previews it.
      const plainPreview = await ws.ok(["preview"]);
      assert.match(plainPreview.output, /\+ {2}random:index:RandomPassword generated-SECRET_KEY create/);

      const up = await ws.pulumi(["up", "--yes", ...policyArgs]);
      assert.notEqual(up.code, 0, `up passed despite the policy violation:\n${up.output}`);
      assert.match(up.output, /Policies:/);
      assert.match(up.output, /pms-secrets@v0\.1\.0/);
      assert.match(up.output, /- \[mandatory\] \[severity: high\]\s+generated-secret-strength/);
      assert.match(up.output, /generated secret SECRET_KEY \(generated-SECRET_KEY\) is 8 characters long/);

      const exported = await ws.ok(["stack", "export"]);
      assert.doesNotMatch(exported.stdout, /RandomPassword/, "the blocked resource was created");
    } finally {
      ws.dispose();
    }
  });

  test("pulumi about sees the language host and the plugins the program's packages ask for", async () => {
    const ws = new Workspace(bin, projectFiles("toolchainabout", WEAK_SECRET_PROGRAM));
    try {
      await ws.init("dev");
      const about = await ws.ok(["about"]);
      assert.match(about.output, /language\s+nodejs\s+3\.248\.0/);
      for (const [name, version] of RESOURCE_PLUGINS) {
        assert.match(about.output, new RegExp(`resource\\s+${name}\\s+${version.replace(/\./g, "\\.")}`));
      }
      assert.match(about.output, /This project is written in nodejs: executable='[^']+node' version='v\d+/);
    } finally {
      ws.dispose();
    }
  });
});
