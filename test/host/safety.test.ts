/**
 * Host safety of the rollout script (issue 8, and the script side of issue 9 items 2-3) on a
 * booted host: the program's own `rolloutCommand(...)` over real ssh with stdin =
 * `rolloutStdin(renderEnvFile(...))`, every assertion on the host's real state (file bytes, modes,
 * owners, links, /proc/PID/environ of every process of each service, unit states).
 *
 *   node --import tsx --test test/host/safety.test.ts        (root, Linux)
 *
 * One host serves every scenario; resetHost() puts it back to "before the first deploy" first.
 * Unit variants (an EnvironmentFile= already in the unit, override.conf, default start limits, a
 * stopped service) are made here with drop-ins / `systemctl stop` on the stock test units.
 *
 * Checked against the script before issue 8 (commit 58d80f2's components/scripts/rollout.sh, in a
 * copy of the tree where appSpec() had no health URL and a /bin/sh-compatible check command, so
 * the old script was not stopped early by the Host header or `source`): every scenario marked
 * [old: FAILS] failed there for the reason it tests, e.g. env content written through the planted
 * .bak.tmp link into /root/victim1, no FAILED line on ENOSPC, celery left on the old key after the
 * SSH drop, "ROLLBACK INCOMPLETE" at the start limit, MainPID=0 taken for a restart loop.
 * [old: no proof] = the old script deploys that unit shape, the test fails there only because
 * nothing proves the processes' environment. [old: passes] guards behaviour both have.
 */
import assert from "node:assert/strict";
import { hostSuite } from "./suite";
import {
  activeStates,
  command,
  ENV_FILE,
  envFile,
  fileInfo,
  leaked,
  resetHost,
  rollout,
  rolloutDropped,
  runningKeys,
  sh,
  waitWorkerDone,
} from "./safety-host";
import { rolloutStdin } from "../../components/host-rollout";
import { unavailable } from "./scenario";
import {
  APP,
  bootFleet,
  hostTestsUnavailableReason,
  LEGACY_ENV,
  LEGACY_UNKNOWN_KEYS,
  PUBLIC_HOST,
  type TestFleet,
  type TestHost,
  verboseLog,
} from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, beforeEach, describe, it } = hostSuite(skip);
const log = verboseLog;

/** A hand-written env file from the old procedure: keys the config does not know, with values. */
const HAND_WRITTEN = [
  "# written by hand",
  "SECRET_KEY=old-hand-rotated-key-0123456789-abcdefghijklmnopqrstuvwxyz",
  "DEBUG=False",
  "EMAIL_HOST_PASSWORD=hunter2-mail-password",
  "export SENTRY_DSN='https://k3y@sentry.example.com/42'",
  "",
].join("\n");
const HAND_WRITTEN_VALUES = ["hunter2-mail-password", "https://k3y@sentry.example.com/42", "old-hand-rotated-key"];

/**
 * The unit shapes of issue 8 item 5 that need a different image setup (H7's boot variants):
 * a template unit + Type=notify, Type=forking, Type=oneshot (MainPID=0, worker in the cgroup), and
 * a years-old hand-written env file sourced by the units (adoption without loss).
 */
/**
 * The host file is the delivered one byte for byte, plus at most what the host adds itself: the
 * SECRET_KEY_FALLBACKS line (issue 10) right after SECRET_KEY.
 */
function assertDelivered(content: string | undefined, delivered: string): void {
  const withoutFallbacks = (content ?? "").replace(/^SECRET_KEY_FALLBACKS='[^']*'\n/m, "");
  assert.equal(withoutFallbacks, delivered);
}

describe("units in the wild: boot variants", { skip }, () => {
  let fleet: TestFleet;
  const byName = (name: string): TestHost => {
    const h = fleet.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no host ${name}`);
    return h;
  };

  before(async () => {
    fleet = await bootFleet(["tmpl", "fork", "oneshot", "legacy"], log, {
      variant: { tmpl: ["template", "notify"], fork: ["forking"], oneshot: ["oneshot"], legacy: ["legacy-env"] },
    });
  });
  after(async () => {
    await fleet?.teardown();
  });

  async function assertAllOn(host: TestHost, key: string): Promise<void> {
    const keys = await runningKeys(fleet, host);
    for (const [svc, held] of Object.entries(keys))
      assert.deepEqual(held, [key], `${host.name} ${svc}: ${held.join(",")}`);
  }

  for (const [name, what] of [
    ["tmpl", "template instance celery-pms@default + Type=notify gunicorn"],
    ["fork", "Type=forking Celery (PIDFile)"],
    ["oneshot", "Type=oneshot Celery: MainPID=0, proof from the cgroup's processes"],
  ] as const) {
    it(`${what}: first deploy and a rotation, every process proven on the new key [old: ${name === "oneshot" ? "FAILS" : "no proof"}]`, async () => {
      const host = byName(name);
      for (let round = 0; round < 2; round++) {
        const env = envFile();
        const r = await rollout(fleet, host, env.text);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(
          r.stdout,
          /restart: celery-pms\S* active and stable for \d+s, (\d+ processes hold the delivered env)/,
        );
        await assertAllOn(host, env.secretKey);
      }
    });
  }

  it("a hand-written env file sourced by the units: refused by default naming its 5 keys, then kept without loss [old: FAILS]", async () => {
    const host = byName("legacy");
    const before = await fileInfo(fleet, host, ENV_FILE);
    // The config manages the guide's keys; CELERY_BROKER_URL (with a Redis password) only the host has.
    const refused = await rollout(fleet, host, envFile({}, ["CELERY_BROKER_URL"]).text);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    for (const k of LEGACY_UNKNOWN_KEYS) assert.ok(refused.stderr.includes(k), `${k} named`);
    assert.deepEqual(await fileInfo(fleet, host, ENV_FILE), before, "nothing changed");
    assert.deepEqual(
      leaked(refused.stdout + refused.stderr, [
        LEGACY_ENV.EMAIL_HOST_PASSWORD,
        LEGACY_ENV.SENTRY_DSN,
        LEGACY_ENV.SECRET_KEY,
      ]),
      [],
    );

    const env = envFile({}, ["CELERY_BROKER_URL"]);
    const kept = await rollout(fleet, host, env.text, { app: { unmanagedKeys: "keep" } });
    assert.equal(kept.code, 0, kept.stdout + kept.stderr);
    assert.deepEqual(
      leaked(kept.stdout + kept.stderr, [LEGACY_ENV.EMAIL_HOST_PASSWORD, LEGACY_ENV.SENTRY_DSN, env.secretKey]),
      [],
    );
    await assertAllOn(host, env.secretKey);
    for (const k of ["EMAIL_HOST_PASSWORD", "SENTRY_DSN"] as const) {
      const held = await runningKeys(fleet, host, k);
      assert.deepEqual(held["pms-backend"], [LEGACY_ENV[k]], `${k} still reaches the app`);
    }
    const backup = await sh(fleet, host, "cat /var/lib/pms-secrets/backups/*/*.env");
    assert.equal(backup, before?.content, "the hand-written file is kept byte for byte, root-only");
  });
});

describe("rollout safety on a real host", { skip }, () => {
  let fleet: TestFleet;
  let host: TestHost;

  before(async () => {
    fleet = await bootFleet(["safety"], log);
    host = fleet.hosts[0];
  });
  after(async () => {
    await fleet?.teardown();
  });
  beforeEach(async () => {
    await waitWorkerDone(fleet, host);
    await resetHost(fleet, host);
  });

  /** A first deploy that must succeed; returns the key it delivered. */
  async function deployed(
    values: Record<string, string> = {},
    opts: Parameters<typeof rollout>[3] = {},
  ): Promise<string> {
    const env = envFile(values);
    const r = await rollout(fleet, host, env.text, opts);
    assert.equal(r.code, 0, `deploy failed:\n${r.stdout}${r.stderr}`);
    return env.secretKey;
  }

  async function assertBothOn(key: string): Promise<void> {
    const keys = await runningKeys(fleet, host);
    for (const svc of APP.services) assert.deepEqual(keys[svc], [key], `${svc} processes run ${keys[svc].join(",")}`);
  }

  describe("pre-existing keys the config does not manage", () => {
    it("refuse (default): nothing changes, the keys are named, no value is printed [old: FAILS]", async () => {
      await sh(fleet, host, `install -m 600 /dev/stdin ${ENV_FILE}`, HAND_WRITTEN);
      const r = await rollout(fleet, host, envFile().text);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /FAILED host=safety service=- check=unmanaged-keys: .*EMAIL_HOST_PASSWORD, SENTRY_DSN/);
      assert.match(r.stderr, /app\.unmanagedKeys/);
      assert.match(r.stderr, /nothing on the host was changed/);
      assert.deepEqual(leaked(r.stdout + r.stderr, HAND_WRITTEN_VALUES), []);
      assert.equal((await fileInfo(fleet, host, ENV_FILE))?.content, HAND_WRITTEN);
      assert.equal(
        await fileInfo(fleet, host, `/etc/systemd/system/pms-backend.service.d/50-pms-secrets.conf`),
        undefined,
      );
    });

    it("keep: carried over on the host, names reported, values never printed, processes hold them, re-run is a no-op [old: FAILS]", async () => {
      await sh(fleet, host, `install -m 644 -o pms -g pms /dev/stdin ${ENV_FILE}`, HAND_WRITTEN);
      const env = envFile();
      const r = await rollout(fleet, host, env.text, { app: { unmanagedKeys: "keep" } });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(
        r.stdout,
        /carried over from the host's file \(unmanagedKeys=keep\): EMAIL_HOST_PASSWORD, SENTRY_DSN/,
      );
      assert.deepEqual(leaked(r.stdout + r.stderr, [...HAND_WRITTEN_VALUES, env.secretKey]), []);
      const file = await fileInfo(fleet, host, ENV_FILE);
      assert.equal(file?.mode, "600");
      assert.equal(file?.owner, "root:root");
      assert.ok(file?.content.startsWith(env.text), "the delivered file comes first, byte for byte");
      // Carried in the one form systemd reads as bash did (systemd ignores `export` lines).
      assert.match(file?.content ?? "", /^EMAIL_HOST_PASSWORD='hunter2-mail-password'$/m);
      assert.match(file?.content ?? "", /^SENTRY_DSN='https:\/\/k3y@sentry\.example\.com\/42'$/m);
      await assertBothOn(env.secretKey);
      const mail = await runningKeys(fleet, host, "EMAIL_HOST_PASSWORD");
      assert.deepEqual(mail["pms-backend"], ["hunter2-mail-password"]);
      const dsn = await runningKeys(fleet, host, "SENTRY_DSN");
      assert.deepEqual(dsn["celery-pms"], ["https://k3y@sentry.example.com/42"]);
      const again = await rollout(fleet, host, env.text, { app: { unmanagedKeys: "keep" } });
      assert.equal(again.code, 0, again.stdout + again.stderr);
      assert.match(again.stdout, /already in place and proven in the running processes; nothing to do/);
    });

    it("drop: left out and named, the old file kept only in the root-only backup [old: FAILS]", async () => {
      await sh(fleet, host, `install -m 600 /dev/stdin ${ENV_FILE}`, HAND_WRITTEN);
      const env = envFile();
      const r = await rollout(fleet, host, env.text, { app: { unmanagedKeys: "drop" } });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /left out \(unmanagedKeys=drop; kept in the backup\): EMAIL_HOST_PASSWORD, SENTRY_DSN/);
      const content = (await fileInfo(fleet, host, ENV_FILE))?.content ?? "";
      assert.ok(
        content.startsWith(env.text),
        "the delivered file, byte for byte (the host may add SECRET_KEY_FALLBACKS)",
      );
      assert.doesNotMatch(content, /EMAIL_HOST_PASSWORD|SENTRY_DSN/);
      const backups = await sh(fleet, host, "cat /var/lib/pms-secrets/backups/*/*.env");
      assert.equal(backups, HAND_WRITTEN);
    });
  });

  it("backups: root-only generations, bounded by --backups, no copy next to the env file, an old 0644 .bak moved in [old: FAILS]", async () => {
    await deployed();
    // What the old script left: a world-readable single backup next to the env file.
    await sh(fleet, host, `install -m 644 /dev/stdin ${ENV_FILE}.bak`, "SECRET_KEY='old-leaked-key'\n");
    const keys: string[] = [];
    for (let i = 0; i < 4; i++) keys.push(await deployed({}, { app: { backupGenerations: 2 } }));
    assert.equal(await fileInfo(fleet, host, `${ENV_FILE}.bak`), undefined, "no .bak next to the env file");
    const listing = await sh(
      fleet,
      host,
      "stat -c '%a %U:%G' /var/lib/pms-secrets /var/lib/pms-secrets/backups/*; stat -c '%a %U:%G %n' /var/lib/pms-secrets/backups/*/*.env",
    );
    const lines = listing.trim().split("\n");
    assert.deepEqual(lines.slice(0, 2), ["700 root:root", "700 root:root"]);
    const files = lines.slice(2);
    assert.equal(files.length, 2, listing);
    for (const f of files) assert.match(f, /^600 root:root /);
    // The two newest previous files: the env files holding keys[1] and keys[2].
    const content = await sh(fleet, host, "cat /var/lib/pms-secrets/backups/*/*.env");
    const holds = (k: string): boolean => content.includes(`SECRET_KEY='${k}'\n`);
    assert.ok(holds(keys[1]) && holds(keys[2]) && !holds(keys[0]), content.replace(/='[^']*'/g, "=..."));
    assert.ok(!content.includes("old-leaked-key"), "the legacy .bak was pruned as the oldest generation");
    await assertBothOn(keys[3]);
  });

  it("emergency purge: once the new key is proven, no backup holds a previous key [old: FAILS]", async () => {
    const first = await deployed();
    await deployed();
    const env = envFile();
    const r = await rollout(fleet, host, env.text, { extraArgs: ["--purge-old-copies"] });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /purge: removed \d+ backup generations/);
    const left = await sh(
      fleet,
      host,
      `grep -rl -F -e ${first} /var/lib/pms-secrets ${APP.dir} /etc/systemd 2>/dev/null; true`,
    );
    assert.equal(left.trim(), "", `files still holding the first key: ${left}`);
    await assertBothOn(env.secretKey);
  });

  describe("a hostile app user who owns the app directory", () => {
    it("links planted at every name the script writes: root writes through none of them [old: FAILS]", async () => {
      await deployed();
      // The app user owns app.dir (common) and plants links to root-owned files.
      await sh(
        fleet,
        host,
        `chown pms:pms ${APP.dir}
        for v in 1 2 3 4; do printf 'victim %s\\n' $v > /root/victim$v; chmod 600 /root/victim$v; done
        runuser -u pms -- ln -s /root/victim1 ${ENV_FILE}.bak.tmp
        runuser -u pms -- ln -s /root/victim2 ${ENV_FILE}.bak
        runuser -u pms -- ln -s /root/victim3 /run/lock/pms-secrets.lock
        runuser -u pms -- ln -s /root/victim4 ${APP.dir}/.pms-secrets.legacy`,
      );
      const assertVictimsUntouched = async (): Promise<void> => {
        for (const v of [1, 2, 3, 4]) {
          const info = await fileInfo(fleet, host, `/root/victim${v}`);
          assert.equal(info?.content, `victim ${v}\n`, `/root/victim${v} was written through a planted link`);
          assert.equal(info?.owner, "root:root", `/root/victim${v} was re-owned`);
        }
        const root = await sh(
          fleet,
          host,
          "ls -A /root | grep -v -E '^(victim[1-4]|\\.ssh|\\.bashrc|\\.profile)$' || true",
        );
        assert.equal(root.trim(), "", "nothing new was written into /root");
      };
      // Phase 1: the links alone. The rollout must finish and touch none of them.
      const env = envFile();
      const r = await rollout(fleet, host, env.text);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      await assertVictimsUntouched();
      await assertBothOn(env.secretKey);
      // Phase 2: meanwhile the app user swaps every temp name it sees for a link to /root (a race).
      const racer = sh(
        fleet,
        host,
        `timeout 25 runuser -u pms -- bash -c 'cd ${APP.dir}; while :; do for f in .env.pms-new.* .pms-secrets.*; do
           [ -e "$f" ] && [ ! -L "$f" ] && mv -f "$f" "$f.moved" 2>/dev/null && ln -s /root "$f" 2>/dev/null; done; done' || true`,
      );
      const env2 = envFile();
      const r2 = await rollout(fleet, host, env2.text);
      await racer;
      await assertVictimsUntouched();
      // The run either finished safely or refused before changing anything; never half-way.
      if (r2.code === 0) await assertBothOn(env2.secretKey);
      else assert.match(r2.stderr, /FAILED host=safety .*nothing on the host was changed/);
      const file = await fileInfo(fleet, host, ENV_FILE);
      assert.equal(file?.kind, "regular file");
      assert.equal(file?.owner, "root:root");
    });

    it("a symlinked env file is refused with a clear message, link and target untouched [old: FAILS]", async () => {
      await sh(
        fleet,
        host,
        `chown pms:pms ${APP.dir}; printf 'root only\\n' > /root/victim-env; chmod 600 /root/victim-env
        runuser -u pms -- ln -s /root/victim-env ${ENV_FILE}`,
      );
      const r = await rollout(fleet, host, envFile().text);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /check=env-file: the env file \/srv\/pms-backend\/\.env\.production is a symbolic link/);
      assert.match(r.stderr, /nothing on the host was changed/);
      assert.equal((await fileInfo(fleet, host, ENV_FILE))?.kind, "symbolic link");
      assert.equal((await fileInfo(fleet, host, "/root/victim-env"))?.content, "root only\n");
      assert.equal(await sh(fleet, host, "ls /var/lib/pms-secrets/backups/*/*.env 2>/dev/null | wc -l"), "0\n");
    });
  });

  describe("a full disk under the env file (small tmpfs)", () => {
    const dir = "/srv/pms-env";
    const file = `${dir}/.env.production`;
    const app = { envFile: file };
    /** Fills the tmpfs in 4 KiB files, then frees `pages` of them. */
    async function fill(pages: number): Promise<void> {
      await sh(
        fleet,
        host,
        `cd ${dir}; i=0; while dd if=/dev/zero of=fill$i bs=4k count=1 2>/dev/null; do i=$((i+1)); done; rm -f fill$i
        for n in $(seq 1 ${pages}); do i=$((i-1)); rm -f fill$i; done; df -k ${dir} | tail -1`,
      );
    }

    beforeEach(async () => {
      await sh(fleet, host, `mkdir -p ${dir} && mount -t tmpfs -o size=32k,mode=755 tmpfs ${dir}`);
    });

    it("no space at all: FAILED line, nothing changed, services still on the old key [old: FAILS]", async () => {
      const old = await deployed({}, { app });
      const before = await fileInfo(fleet, host, file);
      await fill(0);
      const r = await rollout(fleet, host, envFile().text, { app });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(
        r.stderr,
        /pms-rollout FAILED host=safety service=- check=env-(file|dir): .*nothing on the host was changed/,
      );
      assert.deepEqual(await fileInfo(fleet, host, file), before);
      await assertBothOn(old);
      assert.equal(
        await sh(fleet, host, `ls -A ${dir} | grep -v '^fill' || true`),
        ".env.production\n",
        "no leftovers",
      );
    });

    it("room for one more page: the rollout fits (the rollback copy is a hard link) [old: FAILS]", async () => {
      await deployed({}, { app });
      await fill(1);
      const env = envFile();
      const r = await rollout(fleet, host, env.text, { app });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      await assertBothOn(env.secretKey);
      assertDelivered((await fileInfo(fleet, host, file))?.content, env.text);
    });
  });

  it("dropped SSH mid-restart: the host finishes on its own, both services on the same new key [old: FAILS]", async () => {
    await deployed();
    const env = envFile();
    const dropped = await rolloutDropped(fleet, host, env.text, /restart: pms-backend\n/);
    assert.ok(dropped.killed, `never reached the restart:\n${dropped.output}`);
    await waitWorkerDone(fleet, host);
    await assertBothOn(env.secretKey);
    assert.deepEqual(await activeStates(fleet, host), { "pms-backend": "active", "celery-pms": "active" });
    assertDelivered((await fileInfo(fleet, host, ENV_FILE))?.content, env.text);
  });

  it("a dropped SSH during a failing rollout: the host rolls back on its own, both on the old key [old: FAILS]", async () => {
    const old = await deployed();
    // The app refuses DEBUG=maybe at start; no check command, so the restart is what fails.
    const dropped = await rolloutDropped(fleet, host, envFile({ DEBUG: "maybe" }).text, /restart: pms-backend\n/, {
      app: { checkCommand: undefined },
    });
    assert.ok(dropped.killed, dropped.output);
    await waitWorkerDone(fleet, host);
    await assertBothOn(old);
    assert.deepEqual(await activeStates(fleet, host), { "pms-backend": "active", "celery-pms": "active" });
  });

  it("the worker SIGKILLed mid-restart: a FAILED line all the same, and the next run sweeps every leftover and converges [old: FAILS]", async () => {
    await deployed();
    const env = envFile();
    const run = rollout(fleet, host, env.text);
    // Kill the worker (its PID is in the root-only state dir) once it has started restarting.
    await sh(
      fleet,
      host,
      `for i in $(seq 1 300); do grep -qs 'restart: pms-backend' /var/lib/pms-secrets/runs/*/log && break; sleep 0.1; done
      kill -KILL "$(cat /var/lib/pms-secrets/rollout.pid)"`,
    );
    const killed = await run;
    assert.equal(killed.code, 1, killed.stdout + killed.stderr);
    assert.match(
      killed.stderr,
      /pms-rollout FAILED host=safety service=- check=worker: the rollout unit pms-rollout-\S+ ended without a result/,
    );
    const leftovers = await sh(
      fleet,
      host,
      `ls -A ${APP.dir} | grep '^\\.pms-secrets' || true; ls /var/lib/pms-secrets/runs`,
    );
    assert.notEqual(
      leftovers.trim(),
      "",
      "the killed run left its private dir or run dir (what the next run must sweep)",
    );
    const again = await rollout(fleet, host, env.text);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal(
      await sh(fleet, host, `ls -A ${APP.dir} | grep '^\\.pms-secrets' || true; ls -A /var/lib/pms-secrets/runs`),
      "",
    );
    await assertBothOn(env.secretKey);
  });

  describe("units as they are in the wild", () => {
    it("an EnvironmentFile= already in the unit: both load, ours last [old: FAILS]", async () => {
      await sh(
        fleet,
        host,
        `mkdir -p /etc/pms-legacy /etc/systemd/system/pms-backend.service.d
        printf 'SECRET_KEY=legacy-key-from-the-old-file\\nLEGACY_ONLY=still-here\\n' > /etc/pms-legacy/backend.env
        sed -i 's|^\\[Service\\]$|[Service]\\nEnvironmentFile=/etc/pms-legacy/backend.env|' /etc/systemd/system/pms-backend.service
        systemctl daemon-reload`,
      );
      try {
        const env = envFile();
        const r = await rollout(fleet, host, env.text);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        await assertBothOn(env.secretKey);
        assert.deepEqual((await runningKeys(fleet, host, "LEGACY_ONLY"))["pms-backend"], ["still-here"]);
      } finally {
        await sh(
          fleet,
          host,
          "sed -i '/^EnvironmentFile=\\/etc\\/pms-legacy/d' /etc/systemd/system/pms-backend.service; systemctl daemon-reload",
        );
      }
    });

    it("an override.conf that overrides ours: fails naming it, rolled back [old: FAILS]", async () => {
      const old = await deployed();
      await sh(
        fleet,
        host,
        `mkdir -p /etc/pms-legacy; printf 'SECRET_KEY=stale-key-in-override\\n' > /etc/pms-legacy/stale.env
        printf '[Service]\\nEnvironmentFile=/etc/pms-legacy/stale.env\\n' > /etc/systemd/system/pms-backend.service.d/override.conf
        systemctl daemon-reload`,
      );
      const r = await rollout(fleet, host, envFile().text);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /FAILED host=safety service=pms-backend check=(drop-in|proof): .*override\.conf/);
      assert.match(r.stderr, /previous env restored and services healthy on it|nothing on the host was changed/);
      assert.equal((await runningKeys(fleet, host))["celery-pms"][0], old);
    });

    it("a process that does not hold the delivered env (UnsetEnvironment=) fails the proof, rolled back [old: FAILS]", async () => {
      const old = await deployed();
      await sh(
        fleet,
        host,
        `printf '[Service]\\nUnsetEnvironment=PAYSTACK_SECRET_KEY\\n' > /etc/systemd/system/pms-backend.service.d/10-site.conf; systemctl daemon-reload`,
      );
      const r = await rollout(fleet, host, envFile().text);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(
        r.stderr,
        /FAILED host=safety service=pms-backend check=proof: processes .* do not hold the delivered env/,
      );
      assert.match(r.stderr, /previous env restored and services healthy on it/);
      await assertBothOn(old);
    });

    it("a deliberately stopped service stays stopped and the output says so [old: FAILS]", async () => {
      await deployed();
      await sh(fleet, host, "systemctl stop celery-pms.service");
      const env = envFile();
      const r = await rollout(fleet, host, env.text);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /unit: celery-pms is stopped \(inactive, enabled\): left stopped/);
      assert.deepEqual(await activeStates(fleet, host), { "pms-backend": "active", "celery-pms": "inactive" });
      assert.deepEqual((await runningKeys(fleet, host))["pms-backend"], [env.secretKey]);
    });

    it("systemd's start limits already hit (burst 5; a 60 s window so the test is not a race): the rotation still restarts [old: FAILS]", async () => {
      await deployed();
      // Restarted in a row, systemd starts it 5 times and then refuses: Result=start-limit-hit.
      const pre = await sh(
        fleet,
        host,
        `for s in ${APP.services.join(" ")}; do
          printf '[Unit]\\nStartLimitIntervalSec=60s\\nStartLimitBurst=5\\n' > /etc/systemd/system/$s.service.d/10-limits.conf; done
        systemctl daemon-reload
        for i in 1 2 3 4 5 6 7; do systemctl restart pms-backend.service 2>/dev/null || break; done
        systemctl show -p Result --value pms-backend.service`,
      );
      assert.equal(pre.trim(), "start-limit-hit", "precondition: the start limit is hit");
      const env = envFile();
      const r = await rollout(fleet, host, env.text);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      await assertBothOn(env.secretKey);
    });

    it("PAMName= with a session that takes 2 s to open: the restart returns before Celery's exec, the proof waits for it and leaves the (sd-pam) helper unjudged [old: FAILS]", async () => {
      await deployed();
      // A Type=simple restart returns once systemd has forked the main process; the PAM session
      // opens in that process before it execs Celery (pam_exec stands in for a slow LDAP or
      // pam_systemd), and (sd-pam) then stays in the cgroup, on systemd's environment.
      await sh(
        fleet,
        host,
        `printf 'account required pam_permit.so\nsession required pam_exec.so type=open_session quiet /usr/bin/sleep 2\n' > /etc/pam.d/pms-slow-session
        printf '[Service]\nPAMName=pms-slow-session\n' > /etc/systemd/system/celery-pms.service.d/10-pam.conf
        systemctl daemon-reload`,
      );
      try {
        const env = envFile();
        const r = await rollout(fleet, host, env.text);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(
          r.stdout,
          /restart: celery-pms active and stable for \d+s, \d+ processes hold the delivered env \(1 systemd helper process\(es\)/,
        );
        const keys = await runningKeys(fleet, host);
        assert.deepEqual(keys["pms-backend"], [env.secretKey]);
        // Celery's processes on the new key; the helper holds no SECRET_KEY at all, not an old one.
        assert.deepEqual([...keys["celery-pms"]].sort(), [env.secretKey, "<unset>"].sort());
      } finally {
        await sh(fleet, host, "rm -f /etc/pam.d/pms-slow-session");
      }
    });

    it("an unknown service: clear error before any change [old: passes]", async () => {
      const r = await rollout(fleet, host, envFile().text, { app: { services: ["pms-backend", "no-such-worker"] } });
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /FAILED host=safety service=no-such-worker check=unit: systemd has no loaded unit no-such-worker\.service .*nothing on the host was changed/,
      );
      assert.equal(await fileInfo(fleet, host, ENV_FILE), undefined);
    });
  });

  describe("checks a stock Django accepts (issue 9 items 2-3)", () => {
    it("health URL with the public Host header: ALLOWED_HOSTS holds only the public name [old: FAILS]", async () => {
      const env = envFile();
      const r = await rollout(fleet, host, env.text);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /health URLs answered 2xx/);
      const probe = "curl -s -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:8000/health/";
      const codes = await sh(fleet, host, `${probe}; ${probe} -H 'Host: ${PUBLIC_HOST}'`);
      assert.equal(codes, "400\n200\n", "Django refuses 127.0.0.1 as Host: the check really sent the public name");
    });

    it("the check command runs as the unit runs (bash, Environment=, User=) and its output is shown redacted [old: FAILS]", async () => {
      await sh(
        fleet,
        host,
        `mkdir -p /etc/systemd/system/pms-backend.service.d
        printf '[Service]\\nEnvironment="SITE_MARKER=from the unit"\\n' > /etc/systemd/system/pms-backend.service.d/10-site.conf
        systemctl daemon-reload`,
      );
      const good = await rollout(fleet, host, envFile().text, {
        app: {
          checkCommand: '[[ "$SITE_MARKER" == "from the unit" ]] && [[ $(id -un) == pms ]] && [[ -n $SECRET_KEY ]]',
        },
      });
      assert.equal(good.code, 0, good.stdout + good.stderr);
      // A short secret, and a secret that contains another one (redacted shortest-first, the
      // outer one's ends would stay visible).
      const short = "q~7";
      const inner = "INNER-secret-value";
      const env = envFile({
        PAYSTACK_SECRET_KEY: short,
        JWT_SIGNING_KEY: `outer-${inner}-tail`,
        HUBTEL_CLIENT_SECRET: inner,
      });
      const bad = await rollout(fleet, host, env.text, {
        app: { checkCommand: 'echo "values: $PAYSTACK_SECRET_KEY / $JWT_SIGNING_KEY / $SECRET_KEY"; exit 3' },
        secretKeys: ["HUBTEL_CLIENT_SECRET", "JWT_SIGNING_KEY", "PAYSTACK_SECRET_KEY", "SECRET_KEY"],
      });
      assert.equal(bad.code, 1);
      assert.match(bad.stdout + bad.stderr, /check output: values: \[redacted\] \/ \[redacted\] \/ \[redacted\]/);
      assert.match(bad.stderr, /check=check-command: the check command exited 3/);
      assert.deepEqual(leaked(bad.stdout + bad.stderr, [short, inner, "outer-", "-tail", env.secretKey]), []);
    });
  });

  it("--verify-only: in sync after a rollout, drift when the file changes without a restart; changes nothing [old: FAILS]", async () => {
    const key = await deployed();
    const verify = command(host, { extraArgs: ["--verify-only"] });
    // stdin = the script alone: compare the host's own file with its processes.
    const sync = await fleet.exec(host, verify, { stdin: rolloutStdin("") });
    assert.equal(sync.code, 0, sync.stdout + sync.stderr);
    assert.match(sync.stdout, /verify: pms-backend in sync \(\d+ processes hold the delivered env\)/);
    await sh(fleet, host, `sed -i "s/^SECRET_KEY=.*/SECRET_KEY='changed-by-hand-without-restart'/" ${ENV_FILE}`);
    const drift = await fleet.exec(host, verify, { stdin: rolloutStdin("") });
    assert.equal(drift.code, 3, drift.stdout + drift.stderr);
    assert.match(drift.stdout, /verify: pms-backend DRIFT/);
    await assertBothOn(key);
  });
});
