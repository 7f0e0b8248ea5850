/**
 * A deliberately small model of what `pulumi up` does with this program, so the
 * host tests run the program's real commands against real hosts without the
 * Pulumi CLI (which cannot be downloaded here).
 *
 * The program itself runs unchanged under Pulumi's mocks (test/harness.ts);
 * this model only decides, per resource and from the previous run's state,
 * what the engine and providers would do, following the rules measured in
 * ../shared/notes/pulumi-pitfalls.md and pulumi-command's source:
 *
 * - random.RandomPassword: any input change (keepers included) replaces it and
 *   draws a new value; otherwise the stored value is kept.
 * - command.remote.Command:
 *     no previous state                      -> create: run `create`
 *     previous run failed (init error)       -> update: run `update` ?? `create`
 *     `triggers` changed (replaceOnChanges)  -> replace: run the new `create`,
 *                                               then the OLD state's `delete` (create-before-delete)
 *     any other input changed                -> update: run `update` ?? `create`
 *     nothing changed                        -> nothing runs
 *     gone from the program                  -> delete: run the old `delete`, if any
 *   A failed command leaves the resource with its new inputs and an init error,
 *   so the next run retries it; resources depending on a failed one are skipped.
 * - A command runs through ssh exactly as the provider does: one session, the
 *   command string executed by the login user's shell, `stdin` piped in, the
 *   host key pinned when `hostKey` is set (unchecked otherwise).
 */
import { spawn } from "node:child_process";
import { randomInt, createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { isDeepStrictEqual } from "node:util";
import { alphabetCharacters } from "../../components/alphabet";
import { RecordedResource, runProgram, TYPES } from "../harness";

export type Operation = "create" | "update" | "replace" | "delete" | "same" | "skipped";

export interface ResourceState {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
  /** The last create/update failed: the engine retries it on the next run. */
  initError: boolean;
}

export interface StepResult {
  name: string;
  type: string;
  op: Operation;
  ok: boolean;
  /** The provider's error text for a failed command. */
  error?: string;
  /** What the command printed (progress lines of the rollout script). */
  output?: string;
  ms: number;
}

export interface UpResult {
  ok: boolean;
  steps: StepResult[];
  /** The commands that ran (not "same"/"skipped"). */
  ran: StepResult[];
  outputs: Record<string, unknown>;
  /** The error the run ends with, as the engine would print it. */
  errors: string[];
  /** SSH sessions opened, by host address:port. */
  sshSessions: Record<string, number>;
}

export interface CommandConnection {
  host: string;
  port?: number;
  user?: string;
  privateKey?: string;
  hostKey?: string;
  perDialTimeout?: number;
  dialErrorLimit?: number;
}

/** Draws a value the way random.RandomPassword does: uniformly from its character set, with its minimums. */
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

export class EngineModel {
  readonly state = new Map<string, ResourceState>();
  private readonly keyDir = fs.mkdtempSync(path.join(os.tmpdir(), "pms-engine-"));

  constructor(
    readonly stack: string,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  /** One `pulumi up` of the real program with `config`. */
  async up(config: Record<string, unknown>): Promise<UpResult> {
    const previous = this.state;
    const emitted = new Map<string, Record<string, unknown>>();
    const program = await runProgram({
      stack: this.stack,
      config,
      computedOutputs: (type, name, inputs) => {
        const out = this.computed(previous.get(name), type, inputs);
        if (out) emitted.set(name, out);
        return out;
      },
    });
    const steps: StepResult[] = [];
    const failed = new Set<string>();
    const sshSessions: Record<string, number> = {};
    const next = new Map<string, ResourceState>();

    for (const r of topological(program.resources)) {
      const prior = previous.get(r.name);
      if (r.type !== TYPES.command) {
        next.set(r.name, {
          type: r.type,
          name: r.name,
          inputs: r.inputs,
          outputs: emitted.get(r.name) ?? {},
          initError: false,
        });
        continue;
      }
      const started = Date.now();
      if (r.dependsOn.some((d) => failed.has(d))) {
        failed.add(r.name);
        if (prior) next.set(r.name, prior);
        steps.push({ name: r.name, type: r.type, op: "skipped", ok: true, ms: 0 });
        continue;
      }
      const op = planCommand(prior, r.inputs);
      if (op === "same") {
        next.set(r.name, prior as ResourceState);
        steps.push({ name: r.name, type: r.type, op, ok: true, ms: 0 });
        continue;
      }
      const script = String(op === "update" ? (r.inputs.update ?? r.inputs.create) : r.inputs.create);
      const conn = r.inputs.connection as CommandConnection;
      const target = `${conn.host}:${conn.port ?? 22}`;
      sshSessions[target] = (sshSessions[target] ?? 0) + 1;
      this.log(`${op} ${r.name} on ${target}`);
      const res = await this.runRemote(conn, script, r.inputs.stdin as string | undefined);
      let ok = res.code === 0;
      let error = ok ? undefined : providerError(res, script);
      const oldDelete = prior?.inputs.delete;
      if (ok && op === "replace" && prior && typeof oldDelete === "string") {
        // create-before-delete: the old resource's delete runs after the new create.
        sshSessions[target] += 1;
        const del = await this.runRemote(prior.inputs.connection as CommandConnection, oldDelete, undefined);
        if (del.code !== 0) {
          ok = false;
          error = providerError(del, oldDelete);
        }
      }
      if (!ok) failed.add(r.name);
      next.set(r.name, { type: r.type, name: r.name, inputs: r.inputs, outputs: {}, initError: !ok });
      steps.push({
        name: r.name,
        type: r.type,
        op,
        ok,
        error,
        output: res.stdout + res.stderr,
        ms: Date.now() - started,
      });
    }
    for (const [name, prior] of previous) {
      if (next.has(name)) continue;
      const del = prior.inputs.delete;
      if (prior.type === TYPES.command && typeof del === "string") {
        const res = await this.runRemote(prior.inputs.connection as CommandConnection, del, undefined);
        steps.push({
          name,
          type: prior.type,
          op: "delete",
          ok: res.code === 0,
          ms: 0,
          error: res.code === 0 ? undefined : providerError(res, del),
        });
      } else {
        steps.push({ name, type: prior.type, op: "delete", ok: true, ms: 0 });
      }
    }
    this.state.clear();
    for (const [k, v] of next) this.state.set(k, v);
    const errors = steps.filter((s) => !s.ok).map((s) => `${s.type} (${s.name}):\n  error: ${s.error ?? "failed"}`);
    return {
      ok: errors.length === 0,
      steps,
      ran: steps.filter((s) => s.op !== "same" && s.op !== "skipped"),
      outputs: program.outputs,
      errors,
      sshSessions,
    };
  }

  /** Outputs the engine keeps for non-command resources between runs. */
  private computed(
    prior: ResourceState | undefined,
    type: string,
    inputs: Record<string, unknown>,
  ): Record<string, unknown> | undefined {
    const unchanged = prior !== undefined && isDeepStrictEqual(prior.inputs, inputs);
    switch (type) {
      case TYPES.password:
        return { result: unchanged ? prior.outputs.result : drawPassword(inputs) };
      case TYPES.secret:
        return { arn: `arn:aws:secretsmanager:eu-west-1:000000000000:secret:${String(inputs.name)}` };
      case TYPES.version:
        return {
          versionId: unchanged
            ? prior.outputs.versionId
            : `v-${createHash("sha256").update(String(inputs.secretString)).digest("hex").slice(0, 12)}`,
        };
      default:
        return undefined;
    }
  }

  /** Runs one command over one SSH session, as pulumi-command's remote provider does. */
  runRemote(
    conn: CommandConnection,
    command: string,
    stdin: string | undefined,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    const port = conn.port ?? 22;
    const keyFile = path.join(this.keyDir, "id");
    fs.writeFileSync(keyFile, conn.privateKey ?? "", { mode: 0o600 });
    const knownHosts = path.join(this.keyDir, `known_hosts_${conn.host}_${port}`);
    const args = [
      "-i",
      keyFile,
      "-p",
      String(port),
      "-o",
      "BatchMode=yes",
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "LogLevel=ERROR",
    ];
    args.push(
      "-o",
      `ConnectTimeout=${conn.perDialTimeout ?? 15}`,
      "-o",
      `ConnectionAttempts=${conn.dialErrorLimit ?? 10}`,
    );
    if (conn.hostKey) {
      fs.writeFileSync(knownHosts, `[${conn.host}]:${port} ${conn.hostKey}\n`);
      args.push("-o", `UserKnownHostsFile=${knownHosts}`, "-o", "StrictHostKeyChecking=yes");
    } else {
      args.push("-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no");
    }
    args.push("-l", conn.user ?? "root", conn.host, command);
    return new Promise((resolve) => {
      const child = spawn("ssh", args, { stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      let partial = "";
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
        partial += d.toString();
        const lines = partial.split("\n");
        partial = lines.pop() ?? "";
        for (const l of lines) this.log(`  ${l}`);
      });
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("close", (code) => resolve({ code: code ?? 255, stdout, stderr }));
      child.stdin.on("error", () => undefined);
      child.stdin.end(stdin ?? "");
    });
  }

  dispose(): void {
    fs.rmSync(this.keyDir, { recursive: true, force: true });
  }
}

/** The command provider's diff, as the engine applies it. */
export function planCommand(
  prior: ResourceState | undefined,
  inputs: Record<string, unknown>,
): Exclude<Operation, "delete" | "skipped"> {
  if (!prior) return "create";
  if (!isDeepStrictEqual(prior.inputs.triggers, inputs.triggers)) return "replace";
  if (prior.initError) return "update";
  const strip = (x: Record<string, unknown>) => Object.fromEntries(Object.entries(x).filter(([k]) => k !== "triggers"));
  return isDeepStrictEqual(strip(prior.inputs), strip(inputs)) ? "same" : "update";
}

/** pulumi-command's error text: `<err>: running "<cmd>":\n<stdout+stderr>`. */
function providerError(res: { code: number; stdout: string; stderr: string }, command: string): string {
  return `Process exited with status ${res.code}: running ${JSON.stringify(command)}:\n${res.stdout}${res.stderr}`;
}

/** Registration order, adjusted so every resource comes after what it depends on. */
function topological(resources: RecordedResource[]): RecordedResource[] {
  const byName = new Map(resources.map((r) => [r.name, r]));
  const done = new Set<string>();
  const out: RecordedResource[] = [];
  const visit = (r: RecordedResource, stack: string[]): void => {
    if (done.has(r.name)) return;
    if (stack.includes(r.name)) throw new Error(`dependency cycle: ${[...stack, r.name].join(" -> ")}`);
    for (const d of r.dependsOn) {
      const dep = byName.get(d);
      if (dep) visit(dep, [...stack, r.name]);
    }
    done.add(r.name);
    out.push(r);
  };
  for (const r of resources) visit(r, []);
  return out;
}
