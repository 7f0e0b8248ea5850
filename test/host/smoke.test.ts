/**
 * Smoke test of the test-host machinery itself: two hosts boot, ssh pins their keys, a
 * hand-written env file + drop-in brings the stand-in app up, and teardown leaves nothing behind.
 *
 *   node --import tsx --test test/host/smoke.test.ts
 *
 * Without root/Linux it is skipped locally with the reason, and fails under CI=true.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { fingerprint } from "../../components/env-file";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { APP, TEST_DB, bootFleet, hostTestsUnavailableReason, type TestFleet, type TestHost } from "./testhost";

const unavailable = hostTestsUnavailableReason();
if (unavailable && process.env.CI) {
  throw new Error(`host tests must run in CI but cannot: ${unavailable}`);
}

const log = (line: string): void => {
  if (process.env.PMS_TESTHOST_VERBOSE) process.stderr.write(`${line}\n`);
};

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

if (unavailable) {
  // Reported as one skipped test with the reason; never as passed.
  it("test hosts (systemd-nspawn)", { skip: unavailable }, () => {});
} else
  describe("test hosts (systemd-nspawn)", () => {
    let fleet: TestFleet;
    let runDirs: string[] = [];
    let pidFiles: string[] = [];

    before(async () => {
      const t0 = Date.now();
      fleet = await bootFleet(["web1", "web2"], log);
      process.stderr.write(`# booted 2 hosts in ${((Date.now() - t0) / 1000).toFixed(1)}s (incl. image check)\n`);
      runDirs = fleet.hosts.map((h) => h.runDir);
      pidFiles = runDirs.flatMap((d) =>
        ["nspawn", "socat-ssh", "socat-http"].map((n) => path.join(d, "pids", `${n}.pid`)),
      );
    });

    after(async () => {
      await fleet?.teardown();
    });

    it("logs in over ssh as root and as deploy with passwordless sudo", async () => {
      for (const host of fleet.hosts) {
        const root = await fleet.exec(host, "id -un; hostname");
        assert.equal(root.code, 0, root.stderr);
        assert.equal(root.stdout, `root\n${host.name}\n`);
        const deploy = await fleet.exec(host, "id -un && sudo -n true && echo sudo-ok", { user: "deploy" });
        assert.equal(deploy.code, 0, deploy.stderr);
        assert.equal(deploy.stdout, "deploy\nsudo-ok\n");
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

    it("starts the app from a hand-written env file and drop-in", async () => {
      const host = fleet.hosts[0];
      const secretKey = newSecretKey();
      const fallback = newSecretKey();
      const envFile = [
        `SECRET_KEY='${secretKey}'`,
        `SECRET_KEY_FALLBACKS='${fallback}'`,
        "DEBUG='False'",
        "ALLOWED_HOSTS='127.0.0.1,localhost'",
        `DB_NAME='${TEST_DB.name}'`,
        `DB_USER='${TEST_DB.user}'`,
        `DB_PASSWORD='${TEST_DB.password}'`,
        `DB_HOST='${TEST_DB.host}'`,
        `DB_PORT='${TEST_DB.port}'`,
        "",
      ].join("\n");
      const write = await fleet.exec(host, `install -m 0600 -o root -g root /dev/stdin ${APP.dir}/.env.production`, {
        stdin: envFile,
      });
      assert.equal(write.code, 0, write.stderr);
      const dropIn = `[Service]\nEnvironmentFile=${APP.dir}/.env.production\n`;
      for (const service of APP.services) {
        const r = await fleet.exec(
          host,
          `mkdir -p /etc/systemd/system/${service}.service.d && cat >/etc/systemd/system/${service}.service.d/10-env.conf`,
          { stdin: dropIn },
        );
        assert.equal(r.code, 0, r.stderr);
      }
      const restart = await fleet.exec(host, `systemctl daemon-reload && systemctl restart ${APP.services.join(" ")}`);
      assert.equal(restart.code, 0, restart.stderr);

      const health = await waitFor("/health/ to answer 200", async () => {
        const r = await fleet.http(host, "/health/").catch(() => undefined);
        return r?.status === 200 ? r : undefined;
      });
      assert.deepEqual(JSON.parse(health.body), { ok: true });

      const fp = JSON.parse((await fleet.http(host, "/key-fingerprint/")).body) as {
        secret_key: string;
        fallbacks: string[];
      };
      assert.equal(fp.secret_key, fingerprint(secretKey));
      assert.deepEqual(fp.fallbacks, [fingerprint(fallback)]);

      const taskId = `smoke-${randomBytes(4).toString("hex")}`;
      assert.equal((await fleet.http(host, `/task/?id=${taskId}`, { method: "POST" })).status, 202);
      await waitFor("the Celery task's row", async () =>
        (await fleet.http(host, `/task/${taskId}/`)).status === 200 ? true : undefined,
      );

      // The other host never got an env file: its app is still down, as before a first deploy.
      const other = fleet.hosts[1];
      const state = await fleet.exec(
        other,
        "systemctl show -p NRestarts --value pms-backend; test -e /srv/pms-backend/.env.production || echo no-env",
      );
      assert.match(state.stdout, /no-env/);
      const otherHealth = await fleet.http(other, "/health/", { timeoutMs: 5_000 }).catch(() => undefined);
      assert.notEqual(otherHealth?.status, 200);
    });

    it("serves sessions, signed tokens and Celery tasks that survive a worker restart", async () => {
      const host = fleet.hosts[0]; // configured by the previous test
      const login = await fleet.http(host, "/login/", { method: "POST" });
      assert.equal(login.status, 200);
      const cookie = login.headers
        .getSetCookie()
        .map((c) => c.split(";")[0])
        .join("; ");
      assert.match(cookie, /sessionid=/);
      assert.equal((await fleet.http(host, "/me/", { headers: { cookie } })).status, 200);
      assert.equal((await fleet.http(host, "/me/")).status, 401);

      const { token } = JSON.parse((await fleet.http(host, "/token/issue/", { method: "POST" })).body) as {
        token: string;
      };
      assert.equal((await fleet.http(host, "/token/verify/", { method: "POST", body: token })).status, 200);
      const tampered = `${token.slice(0, -2)}${token.endsWith("AA") ? "BB" : "AA"}`;
      assert.equal((await fleet.http(host, "/token/verify/", { method: "POST", body: tampered })).status, 400);

      // A task that is running when the worker is restarted still completes (warm shutdown).
      const taskId = `slow-${randomBytes(4).toString("hex")}`;
      assert.equal((await fleet.http(host, `/slow-task/?id=${taskId}&seconds=3`, { method: "POST" })).status, 202);
      await waitFor("the slow task to start", async () => {
        const r = await fleet.exec(
          host,
          "journalctl -u celery-pms --no-pager -o cat | grep -c 'pmsapp.tasks.record.*received' || true",
        );
        return Number(r.stdout.trim()) >= 2 ? true : undefined; // the quick task of the previous test + this one
      });
      const restart = await fleet.exec(host, "systemctl restart celery-pms");
      assert.equal(restart.code, 0, restart.stderr);
      assert.equal((await fleet.http(host, `/task/${taskId}/`)).status, 200, "row written before the worker stopped");
    });

    it("teardown leaves no process, mount, cgroup or netns behind", async () => {
      const pids = pidFiles.filter((f) => fs.existsSync(f)).map((f) => Number(fs.readFileSync(f, "utf8").trim()));
      assert.equal(pids.length, 6);
      const ids = fleet.hosts.map((h) => h.id);
      const t0 = Date.now();
      await fleet.teardown();
      process.stderr.write(`# teardown of 2 hosts took ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);

      for (const pid of pids) assert.equal(fs.existsSync(`/proc/${pid}`), false, `pid ${pid} still alive`);
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
