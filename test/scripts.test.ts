/** The host scripts: shellcheck-clean, and the stdin framing the rollout relies on. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
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

/** Like withRolloutFunctions, with stdin and stderr (the FAILED line goes to stderr). */
function rolloutFunctionsWith(body: string, input: string): { status: number | null; stdout: string; stderr: string } {
  const functions = ROLLOUT_SCRIPT.slice(0, ROLLOUT_SCRIPT.lastIndexOf('main "$@"; exit $?'));
  return spawnSync("/bin/bash", ["-c", `${functions}\nset +e\n${body}`], { input, encoding: "utf8" });
}

const ENV_WITH_KEYS = "ALLOWED_HOSTS='api.example.com'\nSECRET_KEY='k-0123456789'\nZ_LAST_KEY='after-secret-key'\n";

test("issue 19 a: an env file without its end marker (a transfer cut at a line end) is refused before any change", () => {
  const receive = (input: string) =>
    rolloutFunctionsWith(
      'HOST=web1; RUN_DIR=$(mktemp -d); receive_env; echo "received:$(cut -d= -f1 "$RUN_DIR/received.env" | tr "\\n" " ")"; rm -rf "$RUN_DIR"',
      input,
    );
  // Whole: accepted, the marker stripped, every key there.
  const whole = receive(rolloutStdin(ENV_WITH_KEYS).slice(ROLLOUT_SCRIPT.length));
  assert.equal(whole.status, 0, whole.stderr);
  assert.match(whole.stdout, /^received:ALLOWED_HOSTS SECRET_KEY Z_LAST_KEY $/m);
  // Cut right after SECRET_KEY's line: no marker. The keys after it would be lost.
  const cut = ENV_WITH_KEYS.slice(0, ENV_WITH_KEYS.indexOf("Z_LAST_KEY"));
  const r = receive(cut);
  assert.equal(r.status, 1, r.stdout);
  assert.doesNotMatch(r.stdout, /received:/);
  assert.match(
    r.stderr,
    /^pms-rollout FAILED host=web1 service=- check=env-file: the env file arrived without its end marker line/m,
  );
  assert.match(r.stderr, /nothing on the host was changed$/m);
  // A marker that does not match what arrived: refused too.
  const wrong = receive(`${cut}# pms-secrets-end sha256=${"0".repeat(64)}\n`);
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /check=env-file: env file does not match its end marker/);
});

/** A root-owned scratch directory whose ancestors are root's and not group/other-writable (/run). */
function rootScratch(t: { skip: (why: string) => void }): string | undefined {
  if (process.getuid?.() !== 0 || !fs.existsSync("/run") || fs.statSync("/run").uid !== 0) {
    t.skip("needs root and a root-owned /run");
    return undefined;
  }
  const dir = fs.mkdtempSync("/run/pms-scripts-test-");
  fs.chmodSync(dir, 0o755);
  return dir;
}

test("issue 19 b: a login password file under a linked directory (/var/run -> /run) is resolved, or refused with a message; no crash", (t) => {
  const dir = rootScratch(t);
  if (!dir) return;
  try {
    fs.mkdirSync(path.join(dir, "real"), { mode: 0o700 });
    fs.writeFileSync(path.join(dir, "real", "pw"), "probe-password-1\n", { mode: 0o600 });
    fs.symlinkSync(path.join(dir, "real"), path.join(dir, "link"));
    fs.mkdirSync(path.join(dir, "open"));
    fs.chmodSync(path.join(dir, "open"), 0o777);
    fs.writeFileSync(path.join(dir, "open", "pw"), "probe-password-2\n", { mode: 0o600 });
    fs.symlinkSync(path.join(dir, "open"), path.join(dir, "link-open"));
    const probe = (file: string) =>
      rolloutFunctionsWith(
        `HOST=web1; SERVICES=(pms-backend); LOGIN_URL=http://127.0.0.1:8000/accounts/login/; LOGIN_PASSWORD_FILE=${file}; ` +
          'check_login_probe; echo "read:${#LOGIN_PW}"',
        "",
      );
    // Through a root-owned link to a root-only directory: read (the physical path checked too).
    const ok = probe(path.join(dir, "link", "pw"));
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout, "read:16\n");
    assert.doesNotMatch(ok.stderr, /unbound variable/);
    // Through a link to a directory anyone can write: refused cleanly, naming it.
    const bad = probe(path.join(dir, "link-open", "pw"));
    assert.equal(bad.status, 1, bad.stdout);
    assert.doesNotMatch(bad.stderr, /unbound variable/);
    assert.match(
      bad.stderr,
      new RegExp(
        `^pms-rollout FAILED host=web1 service=pms-backend check=login-probe: ${dir}/open is writable by group or others .*chmod go-w ${dir}/open; nothing on the host was changed$`,
        "m",
      ),
    );
    // The real /var/run -> /run link, where it exists.
    if (fs.lstatSync("/var/run", { throwIfNoEntry: false })?.isSymbolicLink()) {
      const viaVarRun = probe(path.join("/var/run", path.basename(dir), "real", "pw"));
      assert.equal(viaVarRun.status, 0, viaVarRun.stderr);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("issue 19 f: --verify-only reads the env file once, safely: a FIFO swapped in later cannot hang it, a huge file is refused", async (t) => {
  const dir = rootScratch(t);
  if (!dir) return;
  const envFile = path.join(dir, "app", ".env.production");
  const fifo = path.join(dir, "app", ".fifo");
  fs.mkdirSync(path.join(dir, "app"), { mode: 0o755 });
  const functions = ROLLOUT_SCRIPT.slice(0, ROLLOUT_SCRIPT.lastIndexOf('main "$@"; exit $?'));
  // verify_only as main runs it; unit_prop stubbed: nothing runs on this machine.
  const body =
    `HOST=web1; ENV_FILE=${envFile}; ENV_DIR=${path.dirname(envFile)}; ENV_NAME=.env.production; SERVICES=(pms-backend); ` +
    'RUN_DIR=$(mktemp -d); unit_prop() { echo inactive; }; verify_only; echo "verify-exit:0"';
  const run = (beforeStdinEnds: () => void) =>
    new Promise<{ code: number | null; out: string; hung: boolean }>((resolve) => {
      // Its own process group, so a hung run is ended whole (bash and the grep it waits for).
      const child = spawn("/bin/bash", ["-c", `${functions}\nset -euo pipefail\n${body}`], {
        stdio: ["pipe", "pipe", "pipe"],
        detached: true,
      });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      let hung = false;
      const timer = setTimeout(() => {
        hung = true;
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
        // Release whatever still waits on the FIFO (a reader blocked in open), without blocking here.
        try {
          fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
        } catch {
          /* no reader */
        }
      }, 10_000);
      child.on("exit", (code) => {
        clearTimeout(timer);
        resolve({ code, out, hung });
      });
      // The script has checked the file by now; the app user (owner of the env directory) swaps it.
      setTimeout(() => {
        beforeStdinEnds();
        child.stdin.end();
      }, 1500);
    });
  try {
    fs.writeFileSync(envFile, ENV_WITH_KEYS, { mode: 0o600 });
    const swapped = await run(() => {
      execFileSync("mkfifo", [fifo]);
      fs.renameSync(fifo, envFile);
    });
    assert.equal(swapped.hung, false, `verify-only hung on a FIFO swapped in after its check:\n${swapped.out}`);
    assert.match(swapped.out, /verify: pms-backend is inactive: nothing running to compare/);
    assert.match(swapped.out, /verify-exit:0/);

    // Larger than any env file: refused, never read into memory.
    fs.rmSync(envFile);
    fs.writeFileSync(envFile, `SECRET_KEY='${"x".repeat(2 * 1024 * 1024)}'\n`, { mode: 0o600 });
    const huge = await run(() => {});
    assert.equal(huge.hung, false);
    assert.equal(huge.code, 1, huge.out);
    assert.match(
      huge.out,
      /^pms-rollout FAILED host=web1 service=- check=verify: \S+\.env\.production is larger than 1048576 bytes/m,
    );

    // A FIFO or a link in its place from the start: refused at once.
    fs.rmSync(envFile);
    execFileSync("mkfifo", [envFile]);
    const pipe = await run(() => {});
    assert.equal(pipe.code, 1, pipe.out);
    assert.match(pipe.out, /check=verify: \S+ is not a regular file with one link \(fifo/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
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
