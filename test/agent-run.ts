/**
 * Runs the host agent as a host would, minus the state directory: the bootstrap's own loader
 * (agent/bootstrap.sh write_loader) unpacks what the program sends after the bootstrap into a temp
 * run dir and runs the agent's front end with `python3 -I`. Only for what the agent refuses before
 * it touches the host (arguments, the received env file), so nothing on this machine changes.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ROLLOUT_SCRIPT, rolloutStdin } from "../components/host-rollout";

export const AGENT_DIR = path.join(__dirname, "..", "agent");
export const BOOTSTRAP = fs.readFileSync(path.join(AGENT_DIR, "bootstrap.sh"), "utf8");

/** Every function of the bootstrap (its last line, which runs `main`, left out). */
export function bootstrapFunctions(): string {
  return BOOTSTRAP.slice(0, BOOTSTRAP.lastIndexOf('main "$@"; exit $?'));
}

export function runAgent(
  args: string[],
  env = "SECRET_KEY='x'\n",
): { status: number | null; stdout: string; stderr: string } {
  const stdin = rolloutStdin(env);
  if (!stdin.startsWith(BOOTSTRAP) || !ROLLOUT_SCRIPT.startsWith(BOOTSTRAP))
    throw new Error("stdin does not start with the bootstrap");
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "pms-agent-run-"));
  try {
    fs.writeFileSync(path.join(runDir, "stdin"), stdin.slice(BOOTSTRAP.length), { mode: 0o600 });
    const w = spawnSync("/bin/bash", [
      "-c",
      `${bootstrapFunctions()}\nwrite_loader "$1"`,
      "_",
      path.join(runDir, "load.py"),
    ]);
    if (w.status !== 0) throw new Error(`write_loader failed: ${String(w.stderr)}`);
    const r = spawnSync("python3", ["-I", path.join(runDir, "load.py"), runDir, ...args], { encoding: "utf8" });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    fs.rmSync(runDir, { recursive: true, force: true });
  }
}
