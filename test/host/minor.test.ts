/**
 * Issue 19's minor host-side defects of the host agent (then components/scripts/rollout.sh), each on a booted host with
 * the program's own `rolloutCommand(...)` and `rolloutStdin(...)` over real ssh (safety-host.ts):
 *
 *   c. another run's sweep never deletes a live run's result; a hand-off timeout that says
 *      "nothing changed" is true (the late worker never rolls out);
 *   e. a socket-activated service idle behind its listening socket is started and proven; one
 *      stopped together with its socket stays stopped;
 *   g. with sudo's log_input/log_output on globally, a rollout through the runbook's sudoers lines
 *      leaves no secret in /var/log/sudo-io;
 *   h. a child started with `env -i` does not fail the proof; a process left from before the
 *      restart still does;
 *   i. the emergency purge runs on a re-run that finds the env in place, and removes the backups
 *      of an earlier env-file path.
 *
 *   node --import tsx --test test/host/minor.test.ts        (root, Linux; ~6 min, 2 hosts)
 *
 * Items a, b, d and f are shown without a host: test/scripts.test.ts and test/rollout-time.test.ts.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { rolloutCommand, rolloutStdin } from "../../components/host-rollout";
import {
  activeStates,
  appSpec,
  ENV_FILE,
  envFile,
  fileInfo,
  hostSpec,
  resetHost,
  rollout,
  runningKeys,
  SECRET_KEYS,
  servicesOf,
  sh,
  waitWorkerDone,
} from "./safety-host";
import { unavailable } from "./scenario";
import { hostSuite } from "./suite";
import { bootFleet, hostTestsUnavailableReason, type TestFleet, type TestHost, verboseLog } from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;
const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

/** The sudoers block of docs/RUNBOOK.md "Host setup", as the file's text. */
function runbookSudoers(): string {
  const runbook = fs.readFileSync(path.join(__dirname, "..", "..", "docs", "RUNBOOK.md"), "utf8");
  const section = runbook.slice(runbook.indexOf("\n### Host setup\n"));
  const block = /^```\n((?:Defaults\S* [^\n]+\n)*\S+ ALL=\(root\) NOPASSWD: [^\n]+)\n```$/m.exec(section)?.[1];
  assert.ok(block, "RUNBOOK.md Host setup has the sudoers block");
  return `${block}\n`;
}

describe("issue 19: minor host-side defects", { skip }, () => {
  let fleet: TestFleet;
  let plain: TestHost;
  let sock: TestHost;

  before(async () => {
    fleet = await bootFleet(["mn1", "mn2"], log, {
      variant: { mn1: ["plain"], mn2: ["socket", "envfile"] },
    });
    [plain, sock] = fleet.hosts;
  });
  after(async () => {
    await fleet?.teardown();
  });

  it("c: a live run whose front end is slow to read its result keeps it through another run's sweep [old: FAILS]", async () => {
    await resetHost(fleet, plain);
    const first = await rollout(fleet, plain, envFile().text);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const env = envFile();
    const live = rollout(fleet, plain, env.text);
    // Once the worker is past the hand-off (its check command runs: the front end has seen it start
    // and relays its log), freeze the front end (an SSH session slow to be scheduled) until the
    // worker has written its result. The front end is the session's process: the bootstrap's
    // `/bin/bash -s -- --host ...` exec'd into `python3 -I <run dir>/load.py <run dir> --host ...`.
    const frozen = await sh(
      fleet,
      plain,
      `for i in $(seq 600); do
         d=$(grep -l -s 'check: running' /var/lib/pms-secrets/runs/*/log | head -n 1)
         pid=$(pgrep -o -f -x '[^ ]+ -I [^ ]+/load[.]py [^ ]+ --host ${plain.name} .*' || true)
         if [ -n "$d" ] && [ -n "$pid" ]; then kill -STOP "$pid"; printf '%s %s\\n' "\${d%/log}" "$pid"; exit 0; fi
         sleep 0.05
       done; exit 1`,
    );
    const [runDir, pid] = frozen.trim().split(" ");
    try {
      await sh(fleet, plain, `for i in $(seq 600); do [ -e ${runDir}/result ] && exit 0; sleep 0.2; done; exit 1`);
      // Another run (nothing to change): it takes the host lock and sweeps the run dirs.
      const other = await rollout(fleet, plain, env.text);
      assert.equal(other.code, 0, other.stdout + other.stderr);
      assert.match(other.stdout, /already in place/);
      const kept = await fleet.exec(plain, `cat ${runDir}/result`);
      assert.equal(kept.stdout, "0\n", `the sweep deleted the live run's result (${runDir})`);
    } finally {
      await sh(fleet, plain, `kill -CONT ${pid} || true`);
    }
    const r = await live;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.doesNotMatch(r.stderr, /ended without a result/);
    assert.match(r.stdout, /done: \S+ in place and proven/);
  });

  it("c: the hand-off times out: 'nothing changed' is true, the late worker never rolls out [old: FAILS]", async () => {
    await resetHost(fleet, plain);
    const before = envFile();
    const first = await rollout(fleet, plain, before.text);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    // Every rollout unit starts 40 s late (a prefix drop-in applies to each transient pms-rollout-*).
    await sh(
      fleet,
      plain,
      "mkdir -p /etc/systemd/system/pms-rollout-.service.d && printf '[Service]\\nExecStartPre=/bin/sleep 40\\n' > /etc/systemd/system/pms-rollout-.service.d/slow.conf && systemctl daemon-reload",
    );
    try {
      const started = Date.now();
      const r = await rollout(fleet, plain, envFile().text);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(
        r.stderr,
        /^pms-rollout FAILED host=mn1 service=- check=worker: .*nothing on the host was changed$/m,
      );
      // Past the moment the delayed worker would have started and finished its rollout.
      await sleep(Math.max(0, started + 60_000 - Date.now()));
      await waitWorkerDone(fleet, plain);
      assert.deepEqual(await runningKeys(fleet, plain), {
        "pms-backend": [before.secretKey],
        "celery-pms": [before.secretKey],
      });
      const file = await fileInfo(fleet, plain, ENV_FILE);
      assert.ok(
        file?.content.includes(`SECRET_KEY='${before.secretKey}'`),
        "the env file changed after 'nothing changed'",
      );
      // The front end claimed the run before it gave up: the worker can never start it.
      assert.match(r.stderr, /the run is cancelled/);
    } finally {
      await sh(fleet, plain, "rm -rf /etc/systemd/system/pms-rollout-.service.d && systemctl daemon-reload");
    }
  });

  it("e: an idle socket-activated service is started and proven on the new env; stopped with its socket, it stays stopped [old: FAILS]", async () => {
    const opts = { app: { socketUnit: "pms-backend.socket" } };
    const first = await rollout(fleet, sock, envFile().text, opts);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    // Idle: the service is stopped, its socket still listens; the next connection would start it.
    await sh(fleet, sock, "systemctl stop pms-backend.service");
    assert.equal(
      (await sh(fleet, sock, "systemctl is-active pms-backend.socket pms-backend.service || true")).trim(),
      "active\ninactive",
    );
    const env = envFile();
    const r = await rollout(fleet, sock, env.text, opts);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /unit: pms-backend is idle \(inactive\) but pms-backend\.socket listens for it/);
    assert.match(r.stdout, /restart: pms-backend is up and its health URLs answered 2xx/);
    assert.match(r.stdout, /restart: pms-backend active and stable for \d+s, \d+ processes hold the delivered env/);
    assert.deepEqual((await runningKeys(fleet, sock))["pms-backend"], [env.secretKey]);
    // A re-run with nothing changed touches nothing.
    const again = await rollout(fleet, sock, env.text, opts);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /already in place/);

    // Stopped by an operator: the socket too. Without app.socketUnit (the idle rule reads the
    // unit's own TriggeredBy), it is left so and the rollout succeeds; with it, the run refuses
    // before any change (zero-downtime.test.ts): stopped either way.
    await sh(fleet, sock, "systemctl stop pms-backend.socket pms-backend.service");
    const next = envFile();
    const s = await rollout(fleet, sock, next.text);
    assert.equal(s.code, 0, s.stdout + s.stderr);
    assert.match(
      s.stdout,
      /unit: pms-backend is stopped \(inactive, \S+\) and so is pms-backend\.socket: left stopped/,
    );
    assert.deepEqual(await activeStates(fleet, sock), { "pms-backend": "inactive", "celery-pms": "active" });
    assert.equal((await sh(fleet, sock, "systemctl is-active pms-backend.socket || true")).trim(), "inactive");
    assert.deepEqual((await runningKeys(fleet, sock))["celery-pms"], [next.secretKey]);
    await sh(fleet, sock, "systemctl start pms-backend.socket pms-backend.service");
  });

  it("g: with sudo's I/O log on for everyone, the runbook's sudoers lines keep every secret of a rollout out of /var/log/sudo-io [old: FAILS]", async () => {
    await resetHost(fleet, plain);
    const runbookRule = runbookSudoers();
    const grant = runbookRule.split("\n").find((l) => / ALL=\(root\) /.test(l));
    assert.ok(grant);
    // The image installs exactly the runbook's lines (smoke.test.ts checks it too).
    assert.equal((await fileInfo(fleet, plain, "/etc/sudoers.d/pms-rollout"))?.content, runbookRule);
    const cmd = rolloutCommand(
      { ...hostSpec(plain), user: "deploy" },
      appSpec({ services: servicesOf(plain) }),
      SECRET_KEYS,
    );
    const asDeploy = (env: string) =>
      fleet.exec(plain, cmd, { user: "deploy", stdin: rolloutStdin(env), timeoutMs: 240_000 });
    const found = (value: string) =>
      sh(fleet, plain, `grep -r -l -a -F -e ${JSON.stringify(value)} /var/log/sudo-io 2>/dev/null || true`);
    await sh(
      fleet,
      plain,
      "printf 'Defaults log_input, log_output\\nDefaults !compress_io\\n' > /etc/sudoers.d/00-iolog && chmod 0440 /etc/sudoers.d/00-iolog && visudo -c -q && rm -rf /var/log/sudo-io",
    );
    try {
      // The control: sudo logs I/O on this host, and with the grant alone a rollout's secrets land there.
      await sh(fleet, plain, "echo io-log-canary-7f3a | sudo -n /bin/cat >/dev/null");
      assert.notEqual(
        (await found("io-log-canary-7f3a")).trim(),
        "",
        "sudo does not log I/O: the check below could not fail",
      );
      await sh(fleet, plain, `printf '%s\\n' ${JSON.stringify(grant)} > /etc/sudoers.d/pms-rollout && visudo -c -q`);
      const leaky = envFile();
      const r0 = await asDeploy(leaky.text);
      assert.equal(r0.code, 0, r0.stdout + r0.stderr);
      assert.notEqual((await found(leaky.secretKey)).trim(), "", "with the grant alone the rollout's stdin is logged");

      // The runbook's lines: nothing of the rollout is logged.
      await sh(fleet, plain, "rm -rf /var/log/sudo-io");
      await sh(fleet, plain, `cat > /etc/sudoers.d/pms-rollout && visudo -c -q`, runbookRule);
      const env = envFile();
      const r = await asDeploy(env.text);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /done: \S+ in place and proven/);
      for (const value of [env.secretKey, "sk_test_safety_fixture"]) {
        assert.equal((await found(value)).trim(), "", "a secret of the rollout is in /var/log/sudo-io");
      }
      // Root's own sudo is still logged: only the deploy user is exempt.
      await sh(fleet, plain, "echo io-log-canary-9c1e | sudo -n /bin/cat >/dev/null");
      assert.notEqual((await found("io-log-canary-9c1e")).trim(), "");
    } finally {
      await sh(fleet, plain, "rm -f /etc/sudoers.d/00-iolog; rm -rf /var/log/sudo-io; visudo -c -q", undefined);
      await sh(
        fleet,
        plain,
        "cat > /etc/sudoers.d/pms-rollout && chmod 0440 /etc/sudoers.d/pms-rollout && visudo -c -q",
        runbookRule,
      );
    }
  });

  it("h: a child with a scrubbed environment (env -i) is not judged; a process left on the old env still fails the proof [old: FAILS]", async () => {
    await resetHost(fleet, plain);
    const dropin = "/etc/systemd/system/celery-pms.service.d/10-child.conf";
    const killAll = "systemctl kill -s KILL --kill-whom=all celery-pms.service || true";
    try {
      await sh(
        fleet,
        plain,
        `mkdir -p ${path.dirname(dropin)} && printf '[Service]\\nExecStartPost=/bin/sh -c "env -i /bin/sleep 600 </dev/null >/dev/null 2>&1 &"\\n' > ${dropin} && systemctl daemon-reload`,
      );
      const env = envFile();
      const r = await rollout(fleet, plain, env.text);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(
        r.stdout,
        /restart: celery-pms active and stable for \d+s, \d+ processes hold the delivered env \(1 child process\(es\) with a scrubbed environment, no unit env and no delivered key, not judged\)/,
      );
      const held = (await runningKeys(fleet, plain))["celery-pms"];
      assert.deepEqual(
        held.filter((k) => k !== "<unset>"),
        [env.secretKey],
      );

      // A process of the previous start that inherited the unit env (KillMode=process keeps it
      // over the restart): on the old key, so the proof fails and the host rolls back.
      await sh(
        fleet,
        plain,
        `printf '[Service]\\nKillMode=process\\nExecStartPost=/bin/sh -c "/bin/sleep 600 </dev/null >/dev/null 2>&1 &"\\n' > ${dropin} && systemctl daemon-reload && ${killAll} && sleep 1 && systemctl reset-failed celery-pms.service; systemctl restart celery-pms.service`,
      );
      const stale = await rollout(fleet, plain, envFile().text);
      assert.equal(stale.code, 1, stale.stdout + stale.stderr);
      assert.match(
        stale.stderr,
        /^pms-rollout FAILED host=mn1 service=celery-pms check=proof: processes .*\(sleep\).* do not hold the delivered env/m,
      );
    } finally {
      await sh(fleet, plain, `rm -f ${dropin}; systemctl daemon-reload; ${killAll}`);
    }
  });

  const backupsHolding = (value: string) =>
    sh(fleet, plain, `grep -r -l -F -e ${JSON.stringify(value)} /var/lib/pms-secrets/backups || true`);

  it("i: an emergency purges the backups of an earlier env-file path [old: FAILS]", async () => {
    await resetHost(fleet, plain);
    const k0 = envFile();
    const k1 = envFile();
    for (const env of [k0, k1]) {
      const r = await rollout(fleet, plain, env.text);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    assert.notEqual((await backupsHolding(k0.secretKey)).trim(), "");
    // app.envFile moves to a root-owned directory.
    const moved = { app: { envFile: "/srv/pms-env/.env.production" } };
    await sh(fleet, plain, "install -d -m 0755 -o root -g root /srv/pms-env");
    const atNewPath = await rollout(fleet, plain, k1.text, moved);
    assert.equal(atNewPath.code, 0, atNewPath.stdout + atNewPath.stderr);
    const k2 = envFile();
    const emergency = await rollout(fleet, plain, k2.text, { ...moved, extraArgs: ["--emergency"] });
    assert.equal(emergency.code, 0, emergency.stdout + emergency.stderr);
    for (const old of [k0, k1])
      assert.equal((await backupsHolding(old.secretKey)).trim(), "", "a backup still holds an old key");
    // The old path's backups went either along with the env file's move (the drop-ins named the old
    // path, so the host moves it) or are purged where they stayed: none may survive either way.
    assert.match(
      atNewPath.stdout + emergency.stdout,
      /env: \d+ backup generation\(s\) of \/srv\/pms-backend\/\.env\.production moved to|purge: removed \d+ backup generations of the earlier env file \/srv\/pms-backend\/\.env\.production/,
    );
  });

  it("i: an emergency re-run that finds the env in place purges all the same [old: FAILS]", async () => {
    await resetHost(fleet, plain);
    const k2 = envFile();
    const first = await rollout(fleet, plain, k2.text);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    // The first emergency run was cut before its purge (here: a run without fallbacks left a
    // backup of k2 and the env the emergency wants); the re-run finds the env in place.
    const k3 = envFile();
    const routine = await rollout(fleet, plain, k3.text, { extraArgs: ["--secret-key-fallbacks", "0"] });
    assert.equal(routine.code, 0, routine.stdout + routine.stderr);
    assert.notEqual((await backupsHolding(k2.secretKey)).trim(), "");
    const rerun = await rollout(fleet, plain, k3.text, { extraArgs: ["--emergency"] });
    assert.equal(rerun.code, 0, rerun.stdout + rerun.stderr);
    assert.match(rerun.stdout, /already in place/);
    assert.equal((await backupsHolding(k2.secretKey)).trim(), "", "the re-run left a backup holding the old key");
    assert.match(rerun.stdout, /purge: removed 1 backup generations holding previous keys/);
  });
});
