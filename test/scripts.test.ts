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

test("the worker gets every readonly constant of the rollout script (it runs from declare -p/-f, not the script)", () => {
  const constants = [...ROLLOUT_SCRIPT.matchAll(/^readonly ([A-Z_][A-Z0-9_]*)=/gm)].map((m) => m[1]);
  assert.ok(constants.length >= 10, `found ${constants.length} readonly constants`);
  const body = /^write_worker\(\) \{\n([\s\S]*?)^\}$/m.exec(ROLLOUT_SCRIPT)?.[1] ?? "";
  const passed = new Set([...body.matchAll(/declare -p ((?:[^\n\\]|\\\n)*)/g)].flatMap((m) => m[1].split(/[\s\\]+/)));
  assert.deepEqual(
    constants.filter((c) => !passed.has(c)),
    [],
    "constants the worker would meet unbound (set -u kills it at the first use)",
  );
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

/**
 * Runs `body` in bash with every function of the rollout script defined (its last line, which
 * runs `main`, left out); `args` become $1...
 */
function withRolloutFunctions(body: string, args: string[] = []): { status: number | null; stdout: string } {
  const functions = ROLLOUT_SCRIPT.slice(0, ROLLOUT_SCRIPT.lastIndexOf('main "$@"; exit $?'));
  return spawnSync("/bin/bash", ["-c", `${functions}\nset +e\n${body}`, "_", ...args], { encoding: "utf8" });
}

test("the rollout script refuses bad option values before reading any env", () => {
  const cases: [string, RegExp][] = [
    ["--unmanaged-keys maybe", /--unmanaged-keys must be refuse, keep or drop/],
    ["--backups 0", /--backups must be 1\.\.20/],
    ["--backups 21", /--backups must be 1\.\.20/],
    ["--service celery-pms@", /a template needs an instance/],
    ["--health-ca /x --health-insecure", /exclude each other/],
    ["--env-file srv/.env", /--env-file must be an absolute path/],
    ["--env-file /srv/../etc/x", /must be a plain absolute file path/],
  ];
  for (const [args, message] of cases) {
    const r = spawnSync(
      "/bin/bash",
      ["-c", `cat | /bin/bash -s -- --host h --env-file /srv/app/.env.production --service web ${args}`],
      { input: rolloutStdin("SECRET_KEY='x'\n"), encoding: "utf8" },
    );
    assert.equal(r.status, 2, `${args}: ${r.stderr}`);
    assert.match(r.stderr, message, args);
    assert.match(r.stderr, /nothing on the host was changed/);
  }
});

test("redaction: longest value first, short values too, every occurrence", () => {
  const r = withRolloutFunctions('add_redactions "ab" "INNER" "outer-INNER-tail" "q~7"; redact "$1"', [
    "x ab outer-INNER-tail INNER q~7 q~7",
  ]);
  assert.equal(r.stdout, "x [redacted] [redacted] [redacted] [redacted] [redacted]");
});

test("hand-written env lines: keys as systemd reads them, values carried only when every parser agrees", () => {
  const lines: [string, string, string | undefined][] = [
    ["A=plain", "A", "plain"],
    ["export B='single quoted'", "B", "single quoted"],
    ['  C="double#quoted!"', "C", "double#quoted!"],
    ["D=two words", "D", undefined],
    ['E="has $VAR"', "E", undefined],
    ["F=back\\slash", "F", undefined],
    ["G='it''s'", "G", undefined],
    ["H=`id`", "H", undefined],
    ["# I=comment", "", undefined],
    ["1BAD=x", "", undefined],
  ];
  for (const [line, key, value] of lines) {
    assert.equal(withRolloutFunctions('line_key "$1"', [line]).stdout, key, line);
    if (key === "") continue;
    const r = withRolloutFunctions('if out=$(line_value "$1"); then printf "ok:%s" "$out"; else printf refused; fi', [
      line,
    ]);
    assert.equal(r.stdout, value === undefined ? "refused" : `ok:${value}`, line);
  }
});
