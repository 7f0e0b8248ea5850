/** The host scripts: shellcheck-clean, and the stdin framing the rollout relies on. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ROLLOUT_SCRIPT, rolloutStdin } from "../components/host-rollout";

const scriptsDir = path.join(__dirname, "..", "components", "scripts");
const hostScripts = fs
  .readdirSync(scriptsDir)
  .filter((f) => f.endsWith(".sh"))
  .map((f) => path.join(scriptsDir, f));
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
  // A stand-in script with the same framing as rollout.sh: functions, then `main; exit` on the last line.
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

test("the rollout script refuses unknown arguments before reading any env", () => {
  const r = spawnSync("/bin/bash", ["-c", "cat | /bin/bash -s -- --host h --bogus x"], {
    input: rolloutStdin("SECRET_KEY='x'\n"),
    encoding: "utf8",
  });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^pms-rollout FAILED host=h service=- check=arguments: unknown argument --bogus/m);
  assert.ok(ROLLOUT_SCRIPT.includes("set -euo pipefail"));
});
