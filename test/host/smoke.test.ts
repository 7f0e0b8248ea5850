/**
 * Smoke test of the test-host machinery and proof that the hosts look like production:
 * - two plain hosts boot, ssh pins their keys, a hand-written env file + drop-in brings the
 *   stand-in app up, and teardown leaves nothing behind;
 * - the app answers only its public name (400 for Host: 127.0.0.1), DEBUG is off, the old
 *   guide's `check --deploy` command runs as written (under bash), systemd's default start
 *   limits apply, pms owns the app directory, mallory is an ordinary local user;
 * - deploy's only sudo rule is docs/RUNBOOK.md's Host setup line: the program's own rollout command
 *   line (every option that puts spaces, slashes and URLs into it) runs as root through it, and
 *   `sudo -n true`, `bash -c`, `bash -s` without `--`, another shell or another user are refused;
 * - every host variant boots and is what HOST_VARIANTS says it is.
 *
 *   node --import tsx --test test/host/smoke.test.ts
 *
 * Without root/Linux it is skipped locally with the reason, and fails under CI=true.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { hostSuite } from "./suite";
import * as yaml from "js-yaml";

import { execFileSync } from "node:child_process";
import { fingerprint } from "../../components/env-file";
import { rolloutCommand } from "../../components/host-rollout";
import { appSpec, hostSpec, SECRET_KEYS } from "./safety-host";
import {
  APP,
  bootFleet,
  ENVIRONMENT_SECRET_KEY,
  HOSTILE_USER,
  hostTestsUnavailableReason,
  LEGACY_ENV,
  OTHER_ENV,
  OVERRIDE_SECRET_KEY,
  PRESET_ENV,
  PUBLIC_HOST,
  TEST_DB,
  type TestFleet,
  type TestHost,
  verboseLog,
} from "./testhost";

const unavailable = hostTestsUnavailableReason();
if (unavailable && process.env.CI) {
  throw new Error(`host tests must run in CI but cannot: ${unavailable}`);
}
const { after, before, describe, it } = hostSuite(unavailable);

const log = verboseLog;

const ENV_FILE = `${APP.dir}/.env.production`;

/**
 * The sudoers block of docs/RUNBOOK.md "Host setup": its Defaults line and its one grant line
 * (test/runbook-sudoers.test.ts checks there is one), as the file's text.
 */
function runbookSudoersLine(): string {
  const runbook = fs.readFileSync(path.join(__dirname, "..", "..", "docs", "RUNBOOK.md"), "utf8");
  const section = runbook.slice(runbook.indexOf("\n### Host setup\n"));
  const block = /^```\n((?:Defaults\S* [^\n]+\n)*\S+ ALL=\(root\) NOPASSWD: [^\n]+)\n```$/m.exec(section)?.[1];
  assert.ok(block, "RUNBOOK.md Host setup has a sudoers block (Defaults lines, then the grant) in a fenced block");
  return block;
}

/** Django-style secret: 64 chars from an alphabet that is safe in every parser and shell. */
function newSecretKey(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_+=!@^*()";
  return [...randomBytes(64)].map((b) => alphabet[b % alphabet.length]).join("");
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined) return value;
    } catch (err) {
      last = err instanceof Error ? `: ${err.message}` : "";
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function run(fleet: TestFleet, host: TestHost, command: string, opts: { user?: string } = {}): Promise<string> {
  const r = await fleet.exec(host, command, opts);
  assert.equal(r.code, 0, `${host.name}: \`${command}\` exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** `systemctl show` properties of a unit as a map. */
async function unitProps(
  fleet: TestFleet,
  host: TestHost,
  unit: string,
  props: string[],
): Promise<Record<string, string>> {
  const out = await run(fleet, host, `systemctl show -p ${props.join(",")} ${unit}`);
  return Object.fromEntries(
    out
      .trim()
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

/** The environment of a unit's main process, as the kernel has it (what the app really reads). */
async function processEnv(fleet: TestFleet, host: TestHost, unit: string): Promise<Record<string, string>> {
  const pid = (await run(fleet, host, `systemctl show -p MainPID --value ${unit}`)).trim();
  assert.notEqual(pid, "0", `${host.name}: ${unit} has no main process`);
  const raw = await run(fleet, host, `tr '\\0' '\\n' </proc/${pid}/environ`);
  return Object.fromEntries(
    raw
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

interface StackApp {
  dir: string;
  services: string[];
  healthUrl?: string;
  healthUrls?: string[];
  healthHost?: string;
  checkCommand?: string;
}

/** The app settings and plain env of a shipped stack file (Pulumi.<stack>.yaml at the repo root). */
function shippedStack(stack: string): { app: StackApp; env: Record<string, string> } {
  const file = path.join(__dirname, "..", "..", `Pulumi.${stack}.yaml`);
  const doc = yaml.load(fs.readFileSync(file, "utf8")) as { config: Record<string, unknown> };
  return {
    app: doc.config["pms-secrets:app"] as StackApp,
    env: doc.config["pms-secrets:env"] as Record<string, string>,
  };
}

/** A process's start time in clock ticks since boot, or undefined when there is no such process. */
function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start at ") "; starttime is field 22.
    return stat.slice(stat.lastIndexOf(") ") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

async function appFingerprint(fleet: TestFleet, host: TestHost): Promise<{ secret_key: string; debug: boolean }> {
  const r = await fleet.http(host, "/key-fingerprint/", { host: PUBLIC_HOST });
  assert.equal(r.status, 200, `${host.name}: /key-fingerprint/ answered ${r.status}: ${r.body.slice(0, 200)}`);
  return JSON.parse(r.body) as { secret_key: string; debug: boolean };
}

describe("test hosts (systemd-nspawn): machinery and a production-like app", () => {
  let fleet: TestFleet;
  let runDirs: string[] = [];
  let pidFiles: string[] = [];

  before(async () => {
    const t0 = Date.now();
    fleet = await bootFleet(["web1", "web2"], log, { variant: { web2: ["stopped", "app-root-owned"] } });
    process.stderr.write(`# booted 2 hosts in ${((Date.now() - t0) / 1000).toFixed(1)}s (incl. image check)\n`);
    runDirs = fleet.hosts.map((h) => h.runDir);
    pidFiles = runDirs.flatMap((d) =>
      ["nspawn", "socat-ssh", "socat-http"].map((n) => path.join(d, "pids", `${n}.pid`)),
    );
  });

  after(async () => {
    await fleet?.teardown();
  });

  it("logs in over ssh as root and as deploy, whose sudo is exactly the runbook's line", async () => {
    const line = runbookSudoersLine();
    for (const host of fleet.hosts) {
      const root = await fleet.exec(host, "id -un; hostname");
      assert.equal(root.code, 0, root.stderr);
      assert.equal(root.stdout, `root\n${host.name}\n`);
      // The only rule for deploy: the runbook's line, in the file the runbook names, accepted by visudo.
      const rules = await run(
        fleet,
        host,
        "stat -c '%a %U:%G' /etc/sudoers.d/pms-rollout; cat /etc/sudoers.d/pms-rollout; visudo -c -q && echo visudo-ok; " +
          "grep -rl deploy /etc/sudoers /etc/sudoers.d",
      );
      assert.equal(rules, `440 root:root\n${line}\nvisudo-ok\n/etc/sudoers.d/pms-rollout\n`);
      const deploy = await fleet.exec(host, "id -un", { user: "deploy" });
      assert.equal(deploy.code, 0, deploy.stderr);
      assert.equal(deploy.stdout, "deploy\n");
    }
  });

  it("deploy's sudo runs the program's own rollout command line and refuses everything else", async () => {
    const host = fleet.hosts[0];
    // The exact command text the program sends for a deploy login, with every option that puts
    // spaces, slashes, quotes or URLs into the argument list sudo matches against `-s -- *`.
    const app = appSpec({
      healthUrls: ["http://127.0.0.1:8000/health/", "https://127.0.0.1:8443/api/status/?full=1&x=y"],
      healthCaFile: "/etc/ssl/certs/pms-ca.pem",
      checkCommand: `${APP.guideCheckCommand} && echo "it's checked"`,
      envFileGroup: "pms",
      unmanagedKeys: "keep",
      backupGenerations: 5,
    });
    const cmd = rolloutCommand({ ...hostSpec(host), user: "deploy" }, app, SECRET_KEYS, [
      "--secret-key-fallbacks",
      "2",
    ]);
    assert.ok(cmd.startsWith("sudo -n /bin/bash -s -- --host "), cmd);
    // stdin is the script bash runs: here one that shows who runs it and with which arguments.
    const allowed = await fleet.exec(host, cmd, {
      user: "deploy",
      stdin: 'id -un; printf "%s\\n" "$#" "$*"\n',
    });
    assert.equal(allowed.code, 0, allowed.stderr);
    const [who, argc, args] = allowed.stdout.split("\n");
    assert.equal(who, "root");
    const expected = execFileSync(
      "bash",
      ["-c", `${cmd.replace(/^sudo -n \/bin\/bash -s --/, "set --")}; printf '%s\\n' "$#" "$*"`],
      {
        encoding: "utf8",
      },
    ).split("\n");
    assert.deepEqual([argc, args], expected.slice(0, 2), "bash got the program's argument list unchanged");
    assert.match(args ?? "", /--check .*check --deploy && echo "it's checked"/);

    // The runbook's own check of the rule, as the deploy user.
    const listed = await fleet.exec(host, "sudo -n -l /bin/bash -s -- --host web1", { user: "deploy" });
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout.trim(), "/bin/bash -s -- --host web1");

    for (const refused of [
      "sudo -n true",
      "sudo -n /bin/bash -c id",
      "sudo -n /bin/bash -s",
      "sudo -n /bin/bash -s id",
      "sudo -n /bin/sh -s -- --host web1",
      "sudo -n -u pms /bin/bash -s -- --host web1",
    ]) {
      const r = await fleet.exec(host, refused, { user: "deploy", stdin: "id -un\n" });
      assert.notEqual(r.code, 0, `\`${refused}\` must be refused: ${r.stdout}`);
      assert.doesNotMatch(r.stdout, /^root$/m, refused);
      // sudo -n asks for no password: the command is simply refused.
      assert.match(r.stderr, /a password is required|is not allowed/, refused);
    }
  });

  it("pins each host's own key: a wrong known_hosts entry is refused", async () => {
    const [a, b] = fleet.hosts as [TestHost, TestHost];
    assert.match(a.hostKey, /^ssh-ed25519 AAAA[0-9A-Za-z+/=]+$/);
    assert.notEqual(a.hostKey, b.hostKey);
    const served = await fleet.exec(a, "cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub");
    assert.equal(served.stdout.trim(), a.hostKey);

    const wrong = path.join(path.dirname(a.knownHostsFile), "known_hosts.wrong");
    fs.writeFileSync(wrong, `[127.0.0.1]:${a.sshPort} ${b.hostKey}\n`);
    const refused = await fleet.exec({ ...a, knownHostsFile: wrong }, "true");
    assert.equal(refused.code, 255);
    assert.match(refused.stderr, /host key|HOST IDENTIFICATION/i);
  });

  it("has the accounts of a real server: pms owns the app dir, mallory is an ordinary user", async () => {
    const host = fleet.hosts[0];
    assert.equal((await run(fleet, host, `stat -c '%U:%G %a' ${APP.dir}`)).trim(), "pms:pms 755");
    assert.equal((await run(fleet, host, `find ${APP.dir} ! -user pms | wc -l`)).trim(), "0");
    // The app user can create files (and links) next to where the env file goes.
    await run(fleet, host, `runuser -u pms -- ln -s /etc/shadow ${APP.dir}/planted && rm ${APP.dir}/planted`);

    const mallory = await fleet.exec(host, 'id -un; id -Gn; echo "$SHELL"; sudo -n true 2>&1 || echo no-sudo', {
      user: HOSTILE_USER,
    });
    assert.equal(mallory.code, 0, mallory.stderr);
    assert.equal(
      mallory.stdout,
      `${HOSTILE_USER}\n${HOSTILE_USER}\n/bin/bash\n${mallory.stdout.split("\n")[3]}\nno-sudo\n`,
    );
    assert.match(mallory.stdout.split("\n")[3] ?? "", /password is required|not allowed|may not run sudo/);

    // web2 boots with the app dir owned by root instead (variant app-root-owned).
    assert.equal(
      (await run(fleet, fleet.hosts[1], `stat -c '%U:%G' ${APP.dir} ${APP.dir}/manage.py`)).trim(),
      "root:root\nroot:root",
    );
  });

  it("runs the app from a real venv with the units a deployment writes, under systemd's default start limits", async () => {
    const host = fleet.hosts[0];
    const venv = await run(
      fleet,
      host,
      `grep -x 'include-system-site-packages = true' ${APP.venv}/pyvenv.cfg && ${APP.venv}/bin/pip --version && ` +
        `${APP.venv}/bin/python -c 'import sys; print(sys.prefix)'`,
    );
    assert.match(venv, new RegExp(`^pip \\d+.* from .*$`, "m"));
    assert.match(venv, new RegExp(`^${APP.venv}$`, "m"));
    for (const unit of ["pms-backend.service", "celery-pms.service"]) {
      const props = await unitProps(fleet, host, unit, [
        "User",
        "Group",
        "WorkingDirectory",
        "ExecStart",
        "EnvironmentFiles",
        "StartLimitIntervalUSec",
        "StartLimitBurst",
        "TimeoutStopUSec",
        "UnitFileState",
      ]);
      assert.equal(props.User, "pms", unit);
      assert.equal(props.Group, "pms", unit);
      assert.equal(props.WorkingDirectory, APP.dir, unit);
      assert.match(props.ExecStart ?? "", new RegExp(`path=${APP.venv}/bin/(gunicorn|celery) `), unit);
      // systemctl show prints no EnvironmentFiles line at all when there is none.
      assert.equal(props.EnvironmentFiles, undefined, `${unit}: the plain variant has no EnvironmentFile=`);
      // systemd's defaults (DefaultStartLimitIntervalSec=10s, DefaultStartLimitBurst=5).
      assert.equal(props.StartLimitIntervalUSec, "10s", unit);
      assert.equal(props.StartLimitBurst, "5", unit);
      assert.equal(props.UnitFileState, "enabled", unit);
    }
    const celery = await unitProps(fleet, host, "celery-pms.service", ["TimeoutStopUSec"]);
    assert.equal(celery.TimeoutStopUSec, "30s");
    const unitText = await run(
      fleet,
      host,
      "cat /etc/systemd/system/pms-backend.service /etc/systemd/system/celery-pms.service",
    );
    assert.doesNotMatch(unitText, /StartLimit/);
  });

  it("before a first deploy the app fails with the old guide's error", async () => {
    const host = fleet.hosts[0];
    await waitFor("the SECRET_KEY error in pms-backend's journal", async () => {
      const r = await fleet.exec(host, "journalctl -u pms-backend --no-pager -o cat");
      return r.stdout.includes("ValueError: SECRET_KEY environment variable must be set") ? true : undefined;
    });
    const health = await fleet.http(host, "/health/", { host: PUBLIC_HOST, timeoutMs: 5_000 }).catch(() => undefined);
    assert.notEqual(health?.status, 200);
  });

  it("starts the app from a hand-written env file and drop-in", async () => {
    const host = fleet.hosts[0];
    const secretKey = newSecretKey();
    const fallback = newSecretKey();
    const envFile = [
      `SECRET_KEY='${secretKey}'`,
      `SECRET_KEY_FALLBACKS='${fallback}'`,
      "DEBUG='False'",
      `ALLOWED_HOSTS='${PUBLIC_HOST}'`,
      `DB_NAME='${TEST_DB.name}'`,
      `DB_USER='${TEST_DB.user}'`,
      `DB_PASSWORD='${TEST_DB.password}'`,
      `DB_HOST='${TEST_DB.host}'`,
      `DB_PORT='${TEST_DB.port}'`,
      "",
    ].join("\n");
    const write = await fleet.exec(host, `install -m 0600 -o root -g root /dev/stdin ${ENV_FILE}`, {
      stdin: envFile,
    });
    assert.equal(write.code, 0, write.stderr);
    const dropIn = `[Service]\nEnvironmentFile=${ENV_FILE}\n`;
    for (const service of APP.services) {
      const r = await fleet.exec(
        host,
        `mkdir -p /etc/systemd/system/${service}.service.d && cat >/etc/systemd/system/${service}.service.d/10-env.conf`,
        { stdin: dropIn },
      );
      assert.equal(r.code, 0, r.stderr);
    }
    // The crash loop before the deploy may have used up the start limit: an operator resets it.
    const restart = await fleet.exec(
      host,
      `systemctl daemon-reload && systemctl reset-failed ${APP.services.join(" ")} && systemctl restart ${APP.services.join(" ")}`,
    );
    assert.equal(restart.code, 0, restart.stderr);

    const health = await waitFor("/health/ to answer 200", async () => {
      const r = await fleet.http(host, "/health/", { host: PUBLIC_HOST }).catch(() => undefined);
      return r?.status === 200 ? r : undefined;
    });
    assert.deepEqual(JSON.parse(health.body), { ok: true });

    const fp = JSON.parse((await fleet.http(host, "/key-fingerprint/", { host: PUBLIC_HOST })).body) as {
      secret_key: string;
      fallbacks: string[];
      debug: boolean;
      allowed_hosts: string[];
    };
    assert.equal(fp.secret_key, fingerprint(secretKey));
    assert.deepEqual(fp.fallbacks, [fingerprint(fallback)]);
    assert.equal(fp.debug, false);
    assert.deepEqual(fp.allowed_hosts, [PUBLIC_HOST]);

    const taskId = `smoke-${randomBytes(4).toString("hex")}`;
    assert.equal((await fleet.http(host, `/task/?id=${taskId}`, { method: "POST", host: PUBLIC_HOST })).status, 202);
    await waitFor("the Celery task's row", async () =>
      (await fleet.http(host, `/task/${taskId}/`, { host: PUBLIC_HOST })).status === 200 ? true : undefined,
    );

    // The other host never got an env file: its app is still down, as before a first deploy.
    const other = fleet.hosts[1];
    const state = await fleet.exec(other, `test -e ${ENV_FILE} || echo no-env`);
    assert.match(state.stdout, /no-env/);
    const otherHealth = await fleet
      .http(other, "/health/", { host: PUBLIC_HOST, timeoutMs: 5_000 })
      .catch(() => undefined);
    assert.notEqual(otherHealth?.status, 200);
  });

  it("answers only its public name, with DEBUG off", async () => {
    const host = fleet.hosts[0]; // configured by the previous test
    for (const name of ["127.0.0.1", "127.0.0.1:8000", "localhost"]) {
      const r = await fleet.http(host, "/health/", { host: name });
      assert.equal(r.status, 400, `Host: ${name} must be refused (DisallowedHost), got ${r.status}`);
    }
    // The default of http() is the loopback name fetch would send: refused too.
    assert.equal((await fleet.http(host, "/health/")).status, 400);
    assert.equal((await fleet.http(host, "/health/", { host: PUBLIC_HOST })).status, 200);
    // DEBUG off: a 404 is Django's plain page, not the technical one listing the URLconf.
    const missing = await fleet.http(host, "/no-such-page/", { host: PUBLIC_HOST });
    assert.equal(missing.status, 404);
    assert.doesNotMatch(missing.body, /URLconf|DEBUG = True|Traceback/);
    const bad = await fleet.http(host, "/health/", { host: "evil.example.net" });
    assert.equal(bad.status, 400);
    assert.doesNotMatch(bad.body, /DisallowedHost|ALLOWED_HOSTS|Traceback/);
  });

  it("runs the old guide's check command as written, under bash, with the unit's environment", async () => {
    const host = fleet.hosts[0];
    const guide = APP.guideCheckCommand;
    // As systemd gives the service its environment (what the program must do, issue 9 item 3).
    const asUnit = (cmd: string): string =>
      `systemd-run --quiet --wait --pipe --collect -p EnvironmentFile=${ENV_FILE} -p User=pms -p Group=pms ` +
      `-- /bin/bash -c ${JSON.stringify(cmd)}`;
    const ok = await fleet.exec(host, asUnit(guide));
    assert.equal(ok.code, 0, `${ok.stdout}${ok.stderr}`);
    assert.match(ok.stdout, /System check identified no issues \(1 silenced\)\./);
    const strict = await fleet.exec(host, asUnit(`${guide} --fail-level WARNING`));
    assert.equal(strict.code, 0, `${strict.stdout}${strict.stderr}`);

    // As root in a shell that loaded the env file by hand.
    const byHand = await fleet.exec(host, `set -a && . ${ENV_FILE} && set +a && ${guide}`);
    assert.equal(byHand.code, 0, byHand.stderr);

    // Under dash `source` does not exist: the guide's line needs bash.
    const dash = await fleet.exec(host, `sh -c ${JSON.stringify(guide)}`);
    assert.notEqual(dash.code, 0);
    assert.match(dash.stderr, /source: not found/);

    // Without the environment the settings refuse, with the guide's message.
    const bare = await fleet.exec(host, `bash -c ${JSON.stringify(guide)}`);
    assert.notEqual(bare.code, 0);
    assert.match(bare.stderr, /ValueError: SECRET_KEY environment variable must be set/);

    // A weak key passes the plain check (exit 0, warnings only) and fails with --fail-level WARNING.
    const weak = "export SECRET_KEY=short-weak-key; ";
    const weakPlain = await fleet.exec(host, asUnit(`${weak}${guide}`));
    assert.equal(weakPlain.code, 0, weakPlain.stderr);
    assert.match(weakPlain.stderr + weakPlain.stdout, /security\.W009/);
    const weakStrict = await fleet.exec(host, asUnit(`${weak}${guide} --fail-level WARNING`));
    assert.notEqual(weakStrict.code, 0);
    assert.match(weakStrict.stderr + weakStrict.stdout, /security\.W009/);
  });

  for (const stack of ["prod", "dev"]) {
    it(`the shipped Pulumi.${stack}.yaml app settings work against the host unchanged`, async () => {
      const host = fleet.hosts[0];
      const { app, env } = shippedStack(stack);
      assert.equal(app.dir, APP.dir);
      assert.deepEqual(app.services, [...APP.services]);
      // The stack's env, plus the secrets the program would add, as the file systemd reads.
      const values: Record<string, string> = {
        ...env,
        DB_PASSWORD: TEST_DB.password,
        SECRET_KEY: newSecretKey(),
      };
      const text = Object.entries(values)
        .map(([k, v]) => `${k}='${v}'`)
        .join("\n");
      const file = `/root/stack-${stack}.env`;
      const put = await fleet.exec(host, `install -m 0600 /dev/stdin ${file}`, { stdin: `${text}\n` });
      assert.equal(put.code, 0, put.stderr);

      // checkCommand as the first service's unit would run it: its User, Group, WorkingDirectory.
      assert.ok(app.checkCommand, `Pulumi.${stack}.yaml has an app.checkCommand`);
      const check = await fleet.exec(
        host,
        `systemd-run --quiet --wait --pipe --collect -p EnvironmentFile=${file} -p User=pms -p Group=pms ` +
          `-p WorkingDirectory=${app.dir} -- /bin/bash -c ${JSON.stringify(`${app.checkCommand} --fail-level WARNING`)}`,
      );
      assert.equal(check.code, 0, `${app.checkCommand}: ${check.stdout}${check.stderr}`);
      assert.match(check.stdout, /System check identified no issues/);

      // The health URL's path through the app with this stack's env (Django's test client: the
      // same host validation): 200 for the Host the program derives (app.healthHost or the first
      // ALLOWED_HOSTS name), 400 for 127.0.0.1:8000, which an HTTP client sends by default.
      const url = app.healthUrls?.[0] ?? app.healthUrl;
      assert.ok(url, `Pulumi.${stack}.yaml has a health URL`);
      const name = app.healthHost ?? (env.ALLOWED_HOSTS ?? "").split(",")[0]?.trim();
      const probe =
        "import django; django.setup(); from django.test import Client; c = Client(); " +
        `p = ${JSON.stringify(new URL(url).pathname)}; ` +
        `print(c.get(p, HTTP_HOST=${JSON.stringify(name)}).status_code, c.get(p, HTTP_HOST="127.0.0.1:8000").status_code)`;
      const served = await fleet.exec(
        host,
        `systemd-run --quiet --wait --pipe --collect -p EnvironmentFile=${file} -p User=pms -p Group=pms ` +
          `-p WorkingDirectory=${app.dir} -p Environment=DJANGO_SETTINGS_MODULE=pmsapp.settings -- ` +
          `${APP.venv}/bin/python -c ${JSON.stringify(probe)}`,
      );
      assert.equal(served.code, 0, served.stderr);
      assert.equal(served.stdout.trim(), "200 400", `${url} with Host: ${name}, then with Host: 127.0.0.1:8000`);
      if (name === PUBLIC_HOST) {
        // The running gunicorn has this very ALLOWED_HOSTS: the URL itself, with curl on the host.
        const curl = (h: string): string =>
          `curl -s -o /dev/null -w '%{http_code}\\n' -H 'Host: ${h}' ${JSON.stringify(url)}`;
        assert.equal(await run(fleet, host, `${curl(name)}; ${curl("127.0.0.1:8000")}`), "200\n400\n");
      }
    });
  }

  it("serves sessions, signed tokens and Celery tasks that survive a worker restart", async () => {
    const host = fleet.hosts[0];
    const opts = { host: PUBLIC_HOST };
    const login = await fleet.http(host, "/login/", { method: "POST", ...opts });
    assert.equal(login.status, 200);
    const setCookies = login.headers.getSetCookie();
    const cookie = setCookies.map((c) => c.split(";")[0]).join("; ");
    assert.match(cookie, /sessionid=/);
    assert.match(setCookies.find((c) => c.startsWith("sessionid=")) ?? "", /; Secure/i, "session cookie is Secure");
    assert.equal((await fleet.http(host, "/me/", { headers: { cookie }, ...opts })).status, 200);
    assert.equal((await fleet.http(host, "/me/", opts)).status, 401);

    const { token } = JSON.parse((await fleet.http(host, "/token/issue/", { method: "POST", ...opts })).body) as {
      token: string;
    };
    assert.equal((await fleet.http(host, "/token/verify/", { method: "POST", body: token, ...opts })).status, 200);
    const tampered = `${token.slice(0, -2)}${token.endsWith("AA") ? "BB" : "AA"}`;
    assert.equal((await fleet.http(host, "/token/verify/", { method: "POST", body: tampered, ...opts })).status, 400);

    // A task that is running when the worker is restarted still completes (warm shutdown).
    const taskId = `slow-${randomBytes(4).toString("hex")}`;
    assert.equal(
      (await fleet.http(host, `/slow-task/?id=${taskId}&seconds=3`, { method: "POST", ...opts })).status,
      202,
    );
    await waitFor("the slow task to start", async () => {
      const r = await fleet.exec(
        host,
        "journalctl -u celery-pms --no-pager -o cat | grep -c 'pmsapp.tasks.record.*received' || true",
      );
      return Number(r.stdout.trim()) >= 2 ? true : undefined; // the quick task of the previous test + this one
    });
    const restart = await fleet.exec(host, "systemctl restart celery-pms");
    assert.equal(restart.code, 0, restart.stderr);
    assert.equal(
      (await fleet.http(host, `/task/${taskId}/`, opts)).status,
      200,
      "row written before the worker stopped",
    );
  });

  it("variant stopped: the Celery unit is disabled and was never started", async () => {
    const host = fleet.hosts[1];
    const props = await unitProps(fleet, host, "celery-pms.service", [
      "UnitFileState",
      "ActiveState",
      "NRestarts",
      "ExecMainStartTimestampMonotonic",
    ]);
    assert.equal(props.UnitFileState, "disabled");
    assert.equal(props.ActiveState, "inactive");
    assert.equal(props.NRestarts, "0");
    assert.equal(props.ExecMainStartTimestampMonotonic, "0");
    // pms-backend is still enabled (and failing for lack of SECRET_KEY, as on web1 before its deploy).
    assert.equal((await unitProps(fleet, host, "pms-backend.service", ["UnitFileState"])).UnitFileState, "enabled");
  });

  it("teardown leaves no process, mount, cgroup or netns behind", async () => {
    const pids = pidFiles.filter((f) => fs.existsSync(f)).map((f) => Number(fs.readFileSync(f, "utf8").trim()));
    assert.equal(pids.length, 6);
    // PIDs wrap fast on a busy machine (pid_max 32768): a process is the same one only if its
    // start time (field 22 of /proc/PID/stat) is too.
    const started = new Map(pids.map((pid) => [pid, startTime(pid)]));
    assert.ok(
      [...started.values()].every((t) => t !== undefined),
      "every recorded process runs before teardown",
    );
    const ids = fleet.hosts.map((h) => h.id);
    const t0 = Date.now();
    await fleet.teardown();
    process.stderr.write(`# teardown of 2 hosts took ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);

    for (const pid of pids) assert.notEqual(startTime(pid), started.get(pid), `pid ${pid} still alive`);
    const netns = fs.existsSync("/run/netns") ? fs.readdirSync("/run/netns") : [];
    for (const id of ids) assert.equal(netns.includes(`th-${id}`), false, `netns th-${id} left`);
    const mounts = fs.readFileSync("/proc/self/mounts", "utf8");
    for (const dir of runDirs) {
      assert.equal(mounts.includes(dir), false, `mount under ${dir} left`);
      assert.equal(fs.existsSync(dir), false, `${dir} left`);
    }
    for (const id of ids) {
      for (const cg of [
        `/sys/fs/cgroup/testhost-${id}`,
        `/sys/fs/cgroup/unified/testhost-${id}`,
        `/sys/fs/cgroup/systemd/testhost-${id}`,
      ]) {
        assert.equal(fs.existsSync(cg), false, `cgroup ${cg} left`);
      }
    }
  });
});

describe("host variants: units and env files as they are found on servers", () => {
  let fleet: TestFleet;
  const host = (name: string): TestHost => {
    const h = fleet.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no host ${name}`);
    return h;
  };

  before(async () => {
    const t0 = Date.now();
    fleet = await bootFleet(["v-units", "v-legacy", "v-override", "v-environment"], log, {
      variant: {
        "v-units": ["envfile", "envfile-other", "notify", "forking"],
        "v-legacy": ["legacy-env", "template"],
        "v-override": ["envfile", "override-envfile", "oneshot"],
        "v-environment": ["envfile", "override-environment"],
      },
      httpHost: "public",
    });
    process.stderr.write(`# booted 4 variant hosts (app up) in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
  });

  after(async () => {
    await fleet?.teardown();
  });

  it("envfile + envfile-other + notify + forking: both EnvironmentFile= in the units, in order; Type=notify gunicorn; forking Celery", async () => {
    const h = host("v-units");
    assert.deepEqual(h.variants, ["envfile", "envfile-other", "notify", "forking"]);
    const web = await unitProps(fleet, h, "pms-backend.service", [
      "Type",
      "EnvironmentFiles",
      "ActiveState",
      "MainPID",
    ]);
    assert.equal(web.Type, "notify");
    assert.equal(web.ActiveState, "active");
    const files = (await run(fleet, h, "systemctl show -p EnvironmentFiles --value pms-backend.service"))
      .trim()
      .split("\n");
    assert.deepEqual(files, ["/etc/default/pms-backend (ignore_errors=yes)", `${ENV_FILE} (ignore_errors=no)`]);
    const text = await run(fleet, h, "cat /etc/systemd/system/pms-backend.service");
    assert.match(text, new RegExp(`^EnvironmentFile=${ENV_FILE}$`, "m"), "in the unit file itself, not a drop-in");
    assert.equal((await run(fleet, h, "ls /etc/systemd/system/pms-backend.service.d 2>/dev/null | wc -l")).trim(), "0");

    const env = await processEnv(fleet, h, "pms-backend.service");
    assert.equal(env.SECRET_KEY, PRESET_ENV.SECRET_KEY);
    assert.equal(env.PMS_UNIT_DEFAULTS, OTHER_ENV.PMS_UNIT_DEFAULTS);
    assert.equal(env.GUNICORN_CMD_ARGS, OTHER_ENV.GUNICORN_CMD_ARGS);
    assert.equal((await appFingerprint(fleet, h)).secret_key, fingerprint(PRESET_ENV.SECRET_KEY));
    assert.equal((await run(fleet, h, `stat -c '%a %U:%G' ${ENV_FILE}`)).trim(), "600 root:root");

    const celery = await unitProps(fleet, h, "celery-pms.service", ["Type", "ActiveState", "MainPID", "PIDFile"]);
    assert.equal(celery.Type, "forking");
    assert.equal(celery.ActiveState, "active");
    assert.equal(celery.PIDFile, "/run/celery-pms/w1.pid");
    assert.equal((await run(fleet, h, "cat /run/celery-pms/w1.pid")).trim(), celery.MainPID);
    const celeryEnv = await processEnv(fleet, h, "celery-pms.service");
    assert.equal(celeryEnv.SECRET_KEY, PRESET_ENV.SECRET_KEY);
    const taskId = `fork-${randomBytes(4).toString("hex")}`;
    assert.equal((await fleet.http(h, `/task/?id=${taskId}`, { method: "POST" })).status, 202);
    await waitFor("the forking worker's task row", async () =>
      (await fleet.http(h, `/task/${taskId}/`)).status === 200 ? true : undefined,
    );
  });

  it("legacy-env + template: a years-old env file (0644, export, quotes, unknown keys) read by a templated worker", async () => {
    const h = host("v-legacy");
    assert.equal(h.celeryUnit, "celery-pms@default.service");
    const file = await run(fleet, h, `stat -c '%a %U:%G' ${ENV_FILE}; cat ${ENV_FILE}`);
    assert.match(file, /^644 root:root\n/);
    assert.match(file, /^export SECRET_KEY="/m);
    assert.match(file, /^export EMAIL_HOST_PASSWORD="/m);
    // systemd would reject the export lines, so the units source the file in a shell.
    const web = await unitProps(fleet, h, "pms-backend.service", ["EnvironmentFiles", "ExecStart"]);
    assert.equal(web.EnvironmentFiles, undefined, "no EnvironmentFile= in the legacy units");
    assert.match(web.ExecStart ?? "", new RegExp(`set -a; \\. ${ENV_FILE}; set \\+a; exec ${APP.venv}/bin/gunicorn `));
    const env = await processEnv(fleet, h, "pms-backend.service");
    for (const [k, v] of Object.entries(LEGACY_ENV)) assert.equal(env[k], v, `pms-backend sees ${k}`);
    assert.equal((await appFingerprint(fleet, h)).secret_key, fingerprint(LEGACY_ENV.SECRET_KEY));

    const unknown = await fleet.exec(h, "systemctl cat celery-pms.service");
    assert.notEqual(unknown.code, 0, "there is no plain celery-pms.service in the template variant");
    const worker = await unitProps(fleet, h, "celery-pms@default.service", [
      "ActiveState",
      "UnitFileState",
      "ExecStart",
    ]);
    assert.equal(worker.ActiveState, "active");
    assert.equal(worker.UnitFileState, "enabled");
    assert.match(worker.ExecStart ?? "", /-n default@%h -Q celery/);
    const workerEnv = await processEnv(fleet, h, "celery-pms@default.service");
    assert.equal(workerEnv.CELERY_BROKER_URL, LEGACY_ENV.CELERY_BROKER_URL);
    // The broker URL's password is real: tasks go through Redis db 1 as the ACL user.
    const taskId = `legacy-${randomBytes(4).toString("hex")}`;
    assert.equal((await fleet.http(h, `/task/?id=${taskId}`, { method: "POST" })).status, 202);
    await waitFor("the templated worker's task row", async () =>
      (await fleet.http(h, `/task/${taskId}/`)).status === 200 ? true : undefined,
    );
    const acl = await run(
      fleet,
      h,
      "redis-cli ACL WHOAMI; redis-cli --user pms --pass pms-redis-test-password --no-auth-warning ACL WHOAMI",
    );
    assert.equal(acl, "default\npms\n");
  });

  it("override-envfile: systemctl edit's override.conf wins over a 50-*.conf drop-in", async () => {
    const h = host("v-override");
    assert.equal((await appFingerprint(fleet, h)).secret_key, fingerprint(OVERRIDE_SECRET_KEY));
    // A drop-in that sorts before override.conf, as the program writes one, with another key.
    const other = newSecretKey();
    const put = await fleet.exec(h, "install -m 0600 /dev/stdin /root/other.env", { stdin: `SECRET_KEY=${other}\n` });
    assert.equal(put.code, 0, put.stderr);
    await run(
      fleet,
      h,
      "printf '[Service]\\nEnvironmentFile=/root/other.env\\n' >/etc/systemd/system/pms-backend.service.d/50-pms-secrets.conf && " +
        "systemctl daemon-reload && systemctl restart pms-backend",
    );
    const files = (await run(fleet, h, "systemctl show -p EnvironmentFiles --value pms-backend")).trim().split("\n");
    assert.deepEqual(files, [
      `${ENV_FILE} (ignore_errors=no)`,
      "/root/other.env (ignore_errors=no)",
      "/etc/pms-backend/secret-key.env (ignore_errors=no)",
    ]);
    await waitFor("pms-backend up again", async () =>
      (await fleet.http(h, "/health/")).status === 200 ? true : undefined,
    );
    assert.equal(
      (await appFingerprint(fleet, h)).secret_key,
      fingerprint(OVERRIDE_SECRET_KEY),
      "override.conf still wins",
    );
  });

  it("oneshot: the Celery unit is active (exited) with MainPID=0, its worker running in the unit's cgroup", async () => {
    const h = host("v-override");
    const props = await unitProps(fleet, h, "celery-pms.service", [
      "Type",
      "ActiveState",
      "SubState",
      "MainPID",
      "ControlGroup",
    ]);
    assert.deepEqual(
      { type: props.Type, active: props.ActiveState, sub: props.SubState, mainPid: props.MainPID },
      { type: "oneshot", active: "active", sub: "exited", mainPid: "0" },
    );
    const pids = (await run(fleet, h, `cat /sys/fs/cgroup${props.ControlGroup}/cgroup.procs`)).trim().split("\n");
    assert.ok(pids.length >= 2, `worker and pool child in ${props.ControlGroup}: ${pids.join(" ")}`);
    const worker = (await run(fleet, h, "cat /run/celery-pms/w1.pid")).trim();
    assert.ok(pids.includes(worker), `worker ${worker} is in the unit's cgroup`);
    const env = await run(fleet, h, `tr '\\0' '\\n' </proc/${worker}/environ | grep -c '^SECRET_KEY=' || true`);
    assert.equal(env.trim(), "1");
    const taskId = `oneshot-${randomBytes(4).toString("hex")}`;
    assert.equal((await fleet.http(h, `/task/?id=${taskId}`, { method: "POST" })).status, 202);
    await waitFor("the oneshot unit's worker task row", async () =>
      (await fleet.http(h, `/task/${taskId}/`)).status === 200 ? true : undefined,
    );
  });

  it("override-environment: Environment=SECRET_KEY in override.conf loses to the EnvironmentFile= value", async () => {
    const h = host("v-environment");
    const shown = await run(fleet, h, "systemctl show -p Environment --value pms-backend");
    assert.equal(shown.trim(), `SECRET_KEY=${ENVIRONMENT_SECRET_KEY}`);
    assert.equal((await appFingerprint(fleet, h)).secret_key, fingerprint(PRESET_ENV.SECRET_KEY));
    assert.equal((await run(fleet, h, "ls /etc/systemd/system/pms-backend.service.d")).trim(), "override.conf");
  });

  it("every variant host answers only its public name", async () => {
    for (const h of fleet.hosts) {
      assert.equal((await fleet.http(h, "/health/")).status, 200, `${h.name} with Host: ${PUBLIC_HOST}`);
      assert.equal((await fleet.http(h, "/health/", { host: "127.0.0.1:8000" })).status, 400, h.name);
      assert.equal((await appFingerprint(fleet, h)).debug, false, h.name);
    }
  });
});
