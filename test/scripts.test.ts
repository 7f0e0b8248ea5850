/** The host scripts: shellcheck-clean, and the stdin framing the rollout relies on. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
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

test("--secret-key-accept (phase 1): the host keeps signing with its key and accepts the delivered one; phase 2 swaps them", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pms-accept-"));
  try {
    // compose once: previous.env = the host's file, received = what the program sends; prints final.env.
    const compose = (previous: string | undefined, accept: boolean): { status: number | null; stdout: string } => {
      fs.rmSync(path.join(dir, "previous.env"), { force: true });
      if (previous !== undefined) fs.writeFileSync(path.join(dir, "previous.env"), previous);
      const r = withRolloutFunctions(
        `RUN_DIR=$1; SK_ACCEPT=${accept ? 1 : 0}; SK_FALLBACKS=1; SERVICES=(web)
         cp -- "$RUN_DIR/received.env" "$RUN_DIR/final.env"
         if [ -e "$RUN_DIR/previous.env" ]; then HAD_PREVIOUS=1; fi
         load_delivered "$RUN_DIR/received.env"
         compose_secret_key_fallbacks
         printf 'rc=%s\\n' $?; cat -- "$RUN_DIR/final.env"`,
        [dir],
      );
      return { status: r.status, stdout: r.stdout };
    };
    fs.writeFileSync(path.join(dir, "received.env"), "DEBUG='False'\nSECRET_KEY='new-key'\n");
    const host = "DEBUG='False'\nSECRET_KEY='old-key'\nSECRET_KEY_FALLBACKS='older-key'\n";

    const phase1 = compose(host, true);
    assert.match(phase1.stdout, /secret key: accept \(phase 1 of 2\)/);
    assert.match(
      phase1.stdout,
      /rc=0\nDEBUG='False'\nSECRET_KEY='old-key'\nSECRET_KEY_FALLBACKS='new-key,older-key'\n$/,
    );
    const phase1File = phase1.stdout.slice(phase1.stdout.indexOf("DEBUG="));

    const again = compose(phase1File, true).stdout;
    assert.equal(
      again.slice(again.indexOf("rc=")),
      phase1.stdout.slice(phase1.stdout.indexOf("rc=")),
      "re-running phase 1 composes the same file (nothing restarts)",
    );

    const phase2 = compose(phase1File, false);
    assert.match(phase2.stdout, /rc=0\nDEBUG='False'\nSECRET_KEY='new-key'\nSECRET_KEY_FALLBACKS='old-key'\n$/);
    const phase2File = phase2.stdout.slice(phase2.stdout.indexOf("DEBUG="));
    assert.match(
      compose(phase2File, true).stdout,
      /rc=0\nDEBUG='False'\nSECRET_KEY='new-key'\nSECRET_KEY_FALLBACKS='old-key'\n$/,
      "phase 1 on a host that already signs with the delivered key changes nothing",
    );

    const fresh = compose(undefined, true);
    assert.equal(fresh.status, 0);
    assert.match(fresh.stdout, /no current SECRET_KEY on this host to keep signing with; nothing changed/);
    assert.doesNotMatch(fresh.stdout, /rc=/, "stops before anything is written");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the rollout script refuses --secret-key-accept with --emergency (an emergency is one phase)", () => {
  const r = spawnSync(
    "/bin/bash",
    [
      "-c",
      "cat | /bin/bash -s -- --host h --env-file /srv/app/.env.production --service web --emergency --secret-key-accept",
    ],
    { input: rolloutStdin("SECRET_KEY='x'\n"), encoding: "utf8" },
  );
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--secret-key-accept and --emergency exclude each other/);
});
