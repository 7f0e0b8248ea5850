/** The host scripts: shellcheck-clean, and the stdin framing the rollout relies on. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ROLLOUT_SCRIPT, agentFiles, rolloutStdin } from "../components/host-rollout";
import { AGENT_DIR, BOOTSTRAP, runAgent } from "./agent-run";

const hostScripts = fs
  .readdirSync(AGENT_DIR)
  .filter((f) => f.endsWith(".sh"))
  .map((f) => path.join(AGENT_DIR, f));
const testScripts = fs
  .readdirSync(path.join(__dirname, "host"), { recursive: true, encoding: "utf8" })
  .filter((f) => f.endsWith(".sh"))
  .map((f) => path.join(__dirname, "host", f));

function haveShellcheck(): boolean {
  return spawnSync("shellcheck", ["--version"]).status === 0;
}

test("every shell script (host side and test hosts) is shellcheck-clean", (t) => {
  if (!haveShellcheck()) {
    if (process.env.CI)
      assert.fail("shellcheck is not installed; .ci/run must install it (apt-get install shellcheck)");
    t.skip("shellcheck not installed (apt-get install shellcheck); CI runs this");
    return;
  }
  assert.ok(hostScripts.length >= 1);
  const r = spawnSync("shellcheck", ["--severity=style", ...hostScripts, ...testScripts], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test("bash -s runs the script and leaves the rest of stdin, byte for byte, to the script", () => {
  // A stand-in script with the same framing as agent/bootstrap.sh: functions, then `main; exit` on the last line.
  const probe = 'set -eu\nmain() { cat > "$1"; }\n# Must stay the last line\nmain "$@"; exit $?\n';
  const dir = fs.mkdtempSync("/tmp/pms-stdin-");
  const out = path.join(dir, "env");
  const env = "A='1'\nB='echo pwned > /tmp/should-not-run'\n$(touch " + path.join(dir, "executed") + ")\n";
  const input = Buffer.from(probe + env);
  // A pipe, as sshd gives the remote shell: bash must not read ahead of its own script.
  execFileSync("/bin/bash", ["-c", `cat | /bin/bash -s -- ${out}`], { input });
  assert.equal(fs.readFileSync(out, "utf8"), env);
  assert.equal(fs.existsSync(path.join(dir, "executed")), false, "data after the script was executed as shell");
  fs.rmSync(dir, { recursive: true });
});

test("stdin is the bootstrap, then each agent file with its byte count, then the end of the agent", () => {
  assert.ok(ROLLOUT_SCRIPT.startsWith(BOOTSTRAP));
  assert.ok(BOOTSTRAP.endsWith('main "$@"; exit $?\n'), "the bootstrap must end on the line that runs main");
  let rest = ROLLOUT_SCRIPT.slice(BOOTSTRAP.length);
  const names: string[] = [];
  for (;;) {
    const nl = rest.indexOf("\n");
    const header = rest.slice(0, nl);
    rest = rest.slice(nl + 1);
    if (header === "# pms-agent-end") break;
    const m = /^# pms-agent-file (\S+) (\d+)$/.exec(header);
    assert.ok(m, header);
    const bytes = Buffer.from(rest, "utf8").subarray(0, Number(m[2])).toString("utf8");
    assert.equal(bytes, fs.readFileSync(path.join(AGENT_DIR, m[1]), "utf8"), m[1]);
    names.push(m[1]);
    rest = rest.slice(bytes.length);
  }
  assert.equal(rest, "");
  assert.deepEqual(names, agentFiles());
  assert.ok(names.includes("pms_agent/worker.py") && names.includes("options.json"));
});

test("the agent refuses unknown arguments before reading any env", () => {
  const r = runAgent(["--host", "h", "--bogus", "x"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^pms-rollout FAILED host=h service=- check=arguments: unknown argument --bogus/m);
  assert.ok(BOOTSTRAP.includes("set -euo pipefail"));
});

test("the agent refuses bad option values before reading any env", () => {
  const cases: [string, RegExp][] = [
    ["--unmanaged-keys maybe", /--unmanaged-keys must be refuse, keep or drop/],
    ["--backups 0", /--backups must be 1\.\.20/],
    ["--backups 21", /--backups must be 1\.\.20/],
    ["--service celery-pms@", /a template needs an instance/],
    ["--health-ca /x --health-insecure", /exclude each other/],
    ["--env-file srv/.env", /--env-file must be an absolute path/],
    ["--env-file /srv/../etc/x", /must be a plain absolute file path/],
    ["--emergency --secret-key-accept", /--secret-key-accept and --emergency exclude each other/],
  ];
  for (const [args, message] of cases) {
    const r = runAgent([
      "--host",
      "h",
      "--env-file",
      "/srv/app/.env.production",
      "--service",
      "web",
      ...args.split(" "),
    ]);
    assert.equal(r.status, 2, `${args}: ${r.stderr}`);
    assert.match(r.stderr, message, args);
    assert.match(r.stderr, /nothing on the host was changed/);
  }
});

test("issue 19 a: an env file without its end marker (a transfer cut at a line end) is refused before any change", () => {
  // The agent's own unit tests (agent/tests/test_envfile.py) cover the refusals; here the whole path
  // from the program's stdin: a cut transfer never reaches the worker.
  const env = "ALLOWED_HOSTS='api.example.com'\nSECRET_KEY='k-0123456789'\nZ_LAST_KEY='after-secret-key'\n";
  const whole = rolloutStdin(env);
  const cut = whole.slice(0, whole.indexOf("Z_LAST_KEY"));
  const runDir = fs.mkdtempSync("/tmp/pms-cut-");
  try {
    fs.writeFileSync(path.join(runDir, "stdin"), cut.slice(BOOTSTRAP.length));
    execFileSync("/bin/bash", [
      "-c",
      `${BOOTSTRAP.slice(0, BOOTSTRAP.lastIndexOf('main "$@"'))}\nwrite_loader "$1"`,
      "_",
      `${runDir}/load.py`,
    ]);
    const r = spawnSync(
      "python3",
      ["-I", `${runDir}/load.py`, runDir, "--host", "web1", "--env-file", "/srv/app/.env", "--service", "web"],
      {
        encoding: "utf8",
      },
    );
    assert.equal(r.status, 1, r.stderr);
    assert.match(
      r.stderr,
      /^pms-rollout FAILED host=web1 service=- check=env-file: the env file arrived without its end marker line/m,
    );
    assert.match(r.stderr, /nothing on the host was changed$/m);
    assert.equal(fs.existsSync(path.join(runDir, "received.env")), false);
  } finally {
    fs.rmSync(runDir, { recursive: true, force: true });
  }
});
