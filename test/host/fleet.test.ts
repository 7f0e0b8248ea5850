/**
 * Issue 11 item 2 on real hosts, through the real `pulumi` CLI: three socket-activated hosts
 * behind a real HAProxy (Debian's package, in a network namespace of its own, health-checking
 * /health/), `rollout.batches: [1, "50%"]`. A rotation under constant load through the balancer
 * loses no request; the canary finishes before the next batch starts; a canary that fails (a unit
 * someone edited by hand) stops the run before any other host is touched, and the next run, once
 * the host is fixed, converges the fleet. Nothing here asserts a timing.
 *
 * Issue 20 (second describe): the same fleet shape behind HAProxy with round-robin balancing and
 * no cookie pinning a session to a host, with logged-in clients (stock LoginView, signed-cookie
 * sessions, CSRF secret in the session) crossing hosts all the time. A SECRET_KEY rotation in two
 * phases (every host's -accept, then every host's -rollout) rejects no session and no CSRF token;
 * the same rotation with `rollout.secretKeyPhases: 1` does (so the clients can see it). A failure
 * in phase 1 or phase 2 stops the run with every host accepting what every other host signs
 * with, and the re-run converges. An emergency: the canary, then both other hosts at once, and
 * the stack output `secretKeyEmergency` gives when each host stopped accepting the old key.
 *
 *   node --import tsx --test test/host/fleet.test.ts     (root, Linux)
 */
import assert from "node:assert/strict";
import { hostSuite } from "./suite";
import { Balancer, BALANCER_PORT } from "./bench/balancer";
import { DEFAULT_LOAD, startLoad } from "./bench/load";
import { DEFAULT_SESSIONS, SessionResult, startSessions } from "./bench/sessions";
import { CliResult, commandSteps, PulumiStack, stepSequence } from "./pulumi-cli";
import { appKeyFingerprint, ENV_FILE, fleetConfig, hostFile, keyFingerprint, unavailable } from "./scenario";
import { bootFleet, hostTestsUnavailableReason, PUBLIC_HOST, TestFleet, TestHost, verboseLog } from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;
const NAMES = ["canary", "fleet2", "fleet3"];

/** Asserts, for each phase that ran, the canary finished before any other host's command started. */
function assertCanaryFirst(r: CliResult, steps: readonly string[] = ["accept", "rollout"]): void {
  for (const step of steps) {
    const canaryDone = stepSequence(r, `canary-${step}`, "done");
    for (const name of NAMES.slice(1)) {
      assert.ok(stepSequence(r, `${name}-${step}`, "pre") > canaryDone, `${name}-${step} started after the canary's`);
    }
  }
}

/** Asserts every `-rollout` (phase 2) started after every `-accept` (phase 1) finished. */
function assertPhasesInOrder(r: CliResult, names: readonly string[] = NAMES): void {
  const lastAccept = Math.max(...names.map((n) => stepSequence(r, `${n}-accept`, "done")));
  for (const n of names) {
    assert.ok(stepSequence(r, `${n}-rollout`, "pre") > lastAccept, `${n}-rollout started after every -accept finished`);
  }
}

describe("a fleet behind HAProxy: canary, then batches", { skip }, () => {
  let fleet: TestFleet;
  let stack: PulumiStack;
  let balancer: Balancer | undefined;
  const configFor = (rotate: string): Record<string, unknown> => {
    const c = fleetConfig(fleet, fleet.hosts, { stableSeconds: 3, overrides: { rollout: { batches: [1, "50%"] } } });
    return { ...c, app: { ...(c.app as object), socketUnit: "pms-backend.socket" }, rotate: { SECRET_KEY: rotate } };
  };
  const envOf = async (h: TestHost): Promise<string> => (await hostFile(fleet, h, ENV_FILE)).content;

  before(async () => {
    fleet = await bootFleet(NAMES, log, { variant: ["socket", "envfile"], httpHost: "public" });
    balancer = await Balancer.start(fleet, fleet.hosts, log);
    stack = await PulumiStack.create({ stack: "fleet", log });
    await stack.setConfig(configFor("initial"));
    const first = await stack.up();
    assert.equal(first.code, 0, first.output);
  });
  after(async () => {
    await balancer?.close();
    await stack?.dispose();
    await fleet?.teardown();
  });

  it("a rotation under constant load through the balancer: no failed request, the canary done before the next batch starts, every host on the new key", async () => {
    assert.ok(balancer);
    await stack.setConfig(configFor("fleet-1"));
    const load = await startLoad({
      netns: balancer.netns,
      port: BALANCER_PORT,
      hostHeader: PUBLIC_HOST,
      ...DEFAULT_LOAD,
    });
    const r = await stack.up();
    await new Promise((res) => setTimeout(res, 1500));
    const result = await load.stop();
    assert.equal(r.code, 0, r.output);
    log(`load through HAProxy: ${result.ok} ok, ${result.failed} failed, longest gap ${result.longestGapMs} ms`);
    assert.equal(result.failed, 0, `failed requests through the balancer: ${JSON.stringify(result.errors)}`);
    assert.ok(result.ok > 100, `the load generator got answers (${result.ok})`);

    assert.deepEqual(
      commandSteps(r)
        .filter((step) => step.startsWith("create-replacement "))
        .sort(),
      NAMES.flatMap((n) => [`create-replacement ${n}-accept`, `create-replacement ${n}-rollout`]).sort(),
      "every host's accept and rollout ran",
    );
    assertCanaryFirst(r);
    assertPhasesInOrder(r);
    const key = keyFingerprint(stack.generatedValue("SECRET_KEY"));
    for (const h of fleet.hosts) assert.equal((await appKeyFingerprint(fleet, h)).secret_key, key, h.name);
    assert.deepEqual(stack.leaks(), []);
  });

  it("a canary that fails (a drop-in someone added by hand overrides the env file) stops the run: no other host is touched; fixed, the next run converges the fleet", async () => {
    const [canary, ...rest] = fleet.hosts;
    const before = await Promise.all(fleet.hosts.map(envOf));
    const keyBefore = keyFingerprint(stack.generatedValue("SECRET_KEY"));
    const dropin = "/etc/systemd/system/pms-backend.service.d/90-local.conf";
    const edit = await fleet.exec(
      canary,
      `printf '[Service]\\nEnvironmentFile=-/srv/pms-backend/.env.local\\n' >${dropin} && systemctl daemon-reload`,
    );
    assert.equal(edit.code, 0, edit.stderr);

    await stack.setConfig(configFor("fleet-2"));
    const failed = await stack.up();
    assert.notEqual(failed.code, 0);
    assert.deepEqual(commandSteps(failed), ["create-replacement canary-accept FAILED"], "only the canary ran");
    assert.match(failed.output, /pms-rollout FAILED host=canary service=pms-backend check=drop-in: .*90-local\.conf/);
    const after1 = await Promise.all(fleet.hosts.map(envOf));
    assert.deepEqual(after1, before, "every host keeps its env file: the canary rolled back, the rest untouched");
    for (const h of rest) assert.equal((await appKeyFingerprint(fleet, h)).secret_key, keyBefore, h.name);
    assert.equal((await appKeyFingerprint(fleet, canary)).secret_key, keyBefore, "canary back on the old key");

    // The operator removes the hand-made drop-in; the next run delivers to all, canary first.
    assert.equal((await fleet.exec(canary, `rm ${dropin} && systemctl daemon-reload`)).code, 0);
    const fixed = await stack.up();
    assert.equal(fixed.code, 0, fixed.output);
    assertCanaryFirst(fixed);
    const key = keyFingerprint(stack.generatedValue("SECRET_KEY"));
    assert.notEqual(key, keyBefore);
    for (const h of fleet.hosts) assert.equal((await appKeyFingerprint(fleet, h)).secret_key, key, h.name);
    assert.deepEqual(stack.leaks(), []);
  });
});

// --- issue 20: sessions across the fleet during a SECRET_KEY rotation ---------------------------

const CLIENT = { username: "fleet-client", password: "fleet-client-password-20" };

/**
 * The same user on every host's own database: same id, same password hash (a fixed salt, long
 * enough (>= 128 bits) that Django does not re-hash it with a random one at the first login, which
 * would give each host its own session auth hash and log the user out on every other host).
 */
const CREATE_CLIENT_USER = [
  "systemd-run --quiet --wait --pipe --collect -p User=pms -p WorkingDirectory=/srv/pms-backend",
  `-p EnvironmentFile=${ENV_FILE} --`,
  "/srv/pms-backend/venv/bin/python manage.py shell -c",
  `"from django.contrib.auth.models import User; from django.contrib.auth.hashers import make_password; User.objects.filter(username='${CLIENT.username}').delete(); User.objects.create(id=4242, username='${CLIENT.username}', password=make_password('${CLIENT.password}', salt='PmsFleetSessionSalt0020Issue20'))"`,
].join(" ");

/** The commands that ran (created or replaced), without the op: `fleet3-accept FAILED`. */
function ranCommands(r: CliResult): string[] {
  return commandSteps(r)
    .filter((c) => /^(create|update|create-replacement) /.test(c))
    .map((c) => c.replace(/^\S+ /, ""))
    .sort();
}

/** Every host's signing key is accepted (signing key or fallback) by every host. */
async function assertEveryKeyAccepted(fleet: TestFleet): Promise<void> {
  const keys = await Promise.all(fleet.hosts.map((h) => appKeyFingerprint(fleet, h)));
  for (const [i, signer] of keys.entries()) {
    for (const [j, verifier] of keys.entries()) {
      assert.ok(
        [verifier.secret_key, ...verifier.fallbacks].includes(signer.secret_key),
        `${fleet.hosts[j].name} accepts what ${fleet.hosts[i].name} signs with`,
      );
    }
  }
}

describe(
  "sessions across a round-robin fleet: a SECRET_KEY rotation in two phases logs nobody out (issue 20)",
  { skip },
  () => {
    let fleet: TestFleet;
    let stack: PulumiStack;
    let balancer: Balancer | undefined;
    let n = 0;
    const configFor = (rotate: string, extra: Record<string, unknown> = {}): Record<string, unknown> => {
      const c = fleetConfig(fleet, fleet.hosts, {
        stableSeconds: 3,
        env: {
          // The session is a cookie signed with SECRET_KEY (every host reads it; no shared store), and
          // the CSRF secret is kept in it: both are refused by a host that does not know the key.
          SESSION_ENGINE: "django.contrib.sessions.backends.signed_cookies",
          CSRF_USE_SESSIONS: "True",
        },
        overrides: { rollout: { batches: [1, "50%"], ...extra } },
      });
      return { ...c, app: { ...(c.app as object), socketUnit: "pms-backend.socket" }, rotate: { SECRET_KEY: rotate } };
    };
    const clients = async () => {
      assert.ok(balancer);
      return startSessions({
        netns: balancer.netns,
        port: BALANCER_PORT,
        hostHeader: PUBLIC_HOST,
        ...CLIENT,
        ...DEFAULT_SESSIONS,
      });
    };
    const keyOf = (): string => keyFingerprint(stack.generatedValue("SECRET_KEY"));
    const describeSessions = (s: SessionResult): string =>
      `${s.logins} logins, ${s.ok} ok, ${s.rejectedSessions} rejected sessions, ${s.csrfFailures} CSRF failures, ${s.failed} failed ${JSON.stringify(s.errors)}, hosts ${JSON.stringify(s.hosts)}, ${s.crossHostSessions} clients crossed hosts`;

    before(async () => {
      fleet = await bootFleet(NAMES, log, { variant: ["socket", "envfile"], httpHost: "public" });
      balancer = await Balancer.start(fleet, fleet.hosts, log, { balance: "roundrobin" });
      stack = await PulumiStack.create({ stack: "sessions", log });
      await stack.setConfig(configFor("initial"));
      const first = await stack.up();
      assert.equal(first.code, 0, first.output);
      for (const h of fleet.hosts) {
        const r = await fleet.exec(h, CREATE_CLIENT_USER);
        assert.equal(r.code, 0, `${h.name}: ${r.stdout}${r.stderr}`);
      }
      // Before any rotation a session made on one host is taken by the others: else nothing below means anything.
      const warmup = await clients();
      await new Promise((res) => setTimeout(res, 4000));
      const w = await warmup.stop();
      assert.ok(w.crossHostSessions > 0 && w.rejectedSessions + w.csrfFailures + w.failed === 0, describeSessions(w));
    });
    after(async () => {
      await balancer?.close();
      await stack?.dispose();
      await fleet?.teardown();
    });

    it("two phases: every -accept before any -rollout; 0 rejected sessions, 0 CSRF failures, 0 failed requests; a re-run touches nothing", async () => {
      const oldKey = keyOf();
      await stack.setConfig(configFor(`two-phase-${++n}`));
      const sessions = await clients();
      const r = await stack.up();
      await new Promise((res) => setTimeout(res, 1500));
      const s = await sessions.stop();
      assert.equal(r.code, 0, r.output);
      log(`two phases: ${describeSessions(s)}`);
      assert.ok(s.logins >= DEFAULT_SESSIONS.clients && s.ok > 200, `the clients worked: ${describeSessions(s)}`);
      assert.equal(Object.keys(s.hosts).length, 3, `every host answered the clients: ${JSON.stringify(s.hosts)}`);
      assert.ok(s.crossHostSessions > 0, "sessions crossed hosts (no pinning)");
      assert.equal(s.rejectedSessions, 0, describeSessions(s));
      assert.equal(s.csrfFailures, 0, describeSessions(s));
      assert.equal(s.failed, 0, describeSessions(s));
      assertPhasesInOrder(r);
      assertCanaryFirst(r);
      assert.match(r.output, /secret key: accept \(phase 1 of 2\)/);
      for (const h of fleet.hosts) {
        const k = await appKeyFingerprint(fleet, h);
        assert.equal(k.secret_key, keyOf(), `${h.name} signs with the new key`);
        assert.equal(k.fallbacks[0], oldKey, `${h.name} keeps the old key as its fallback`);
      }
      const again = await stack.up();
      assert.equal(again.code, 0, again.output);
      assert.deepEqual(commandSteps(again), [], "nothing changed: no command ran");
      assert.deepEqual(stack.leaks(), []);
    });

    it("rollout.secretKeyPhases 1, same fleet and clients: sessions signed by a rotated host are rejected elsewhere (the clients can see the window)", async () => {
      await stack.setConfig(configFor(`one-phase-${++n}`, { secretKeyPhases: 1 }));
      const sessions = await clients();
      const r = await stack.up();
      await new Promise((res) => setTimeout(res, 1500));
      const s = await sessions.stop();
      assert.equal(r.code, 0, r.output);
      log(`one phase: ${describeSessions(s)}`);
      // Down to one phase, the accept commands leave the state (deleted: they run nothing on a host).
      assert.ok(!commandSteps(r).some((c) => /^(create|update|create-replacement) .*-accept/.test(c)), "one phase");
      assert.ok(s.rejectedSessions + s.csrfFailures > 0, `one phase logs users out: ${describeSessions(s)}`);
      assert.equal(s.failed, 0, describeSessions(s));
    });

    it("a failure in phase 1 stops the run before any host signs with the new key; fixed, the re-run converges", async () => {
      const [, , third] = fleet.hosts;
      const signing = await Promise.all(fleet.hosts.map((h) => appKeyFingerprint(fleet, h)));
      const dropin = "/etc/systemd/system/pms-backend.service.d/90-local.conf";
      const set = `printf '[Service]\\nEnvironmentFile=-/srv/pms-backend/.env.local\\n' >${dropin} && systemctl daemon-reload`;
      assert.equal((await fleet.exec(third, set)).code, 0);
      await stack.setConfig(configFor(`phase1-fail-${++n}`));
      const failed = await stack.up();
      assert.notEqual(failed.code, 0);
      assert.deepEqual(ranCommands(failed), ["canary-accept", "fleet2-accept", "fleet3-accept FAILED"]);
      assert.match(failed.output, /pms-rollout FAILED host=fleet3 service=pms-backend check=drop-in/);
      for (const [i, h] of fleet.hosts.entries()) {
        assert.equal(
          (await appKeyFingerprint(fleet, h)).secret_key,
          signing[i].secret_key,
          `${h.name} still signs with the old key`,
        );
      }
      await assertEveryKeyAccepted(fleet);

      assert.equal((await fleet.exec(third, `rm ${dropin} && systemctl daemon-reload`)).code, 0);
      const fixed = await stack.up();
      assert.equal(fixed.code, 0, fixed.output);
      assert.deepEqual(ranCommands(fixed), ["canary-rollout", "fleet2-rollout", "fleet3-accept", "fleet3-rollout"]);
      assertPhasesInOrder(fixed, ["fleet3"]);
      for (const h of fleet.hosts) assert.equal((await appKeyFingerprint(fleet, h)).secret_key, keyOf(), h.name);
      await assertEveryKeyAccepted(fleet);
    });

    it("a failure in phase 2 leaves that host on its phase-1 env (accepting the new key, signing with the old) and stops the run; the re-run converges", async () => {
      const [, , third] = fleet.hosts;
      const before = await Promise.all(fleet.hosts.map((h) => appKeyFingerprint(fleet, h)));
      await stack.setConfig(configFor(`phase2-fail-${++n}`));
      // A fault that only phase 2 meets, on fleet3 only: Celery refuses to start when its env lists
      // a single fallback (phase 1 lists two: the new key first, then the kept one), so phase 2's
      // restart fails after the env moved, and the rollout must roll fleet3 back to its phase-1 env.
      const fault = "/etc/systemd/system/celery-pms.service.d/10-test-fault.conf";
      // systemd turns $$ into $; sh reads the variable from the unit's env.
      const execStartPre =
        'ExecStartPre=/bin/sh -c "case x$${SECRET_KEY_FALLBACKS} in x*,*) exit 0 ;; *) echo test fault: one fallback >&2; exit 1 ;; esac"';
      const setFault = `install -d ${fault.slice(0, fault.lastIndexOf("/"))} && printf '%s\\n' '[Service]' '${execStartPre}' >${fault} && systemctl daemon-reload`;
      assert.equal((await fleet.exec(third, setFault)).code, 0);
      const failed = await stack.up();
      assert.notEqual(failed.code, 0);
      assert.deepEqual(ranCommands(failed), [
        "canary-accept",
        "canary-rollout",
        "fleet2-accept",
        "fleet2-rollout",
        "fleet3-accept",
        "fleet3-rollout FAILED",
      ]);
      assert.match(
        failed.output,
        /pms-rollout FAILED host=fleet3 service=celery-pms check=restart: .*previous env restored/,
      );
      const newKey = keyFingerprint(stack.generatedValue("SECRET_KEY"));
      const k3 = await appKeyFingerprint(fleet, third);
      assert.equal(k3.secret_key, before[2].secret_key, "fleet3 still signs with the old key");
      assert.equal(k3.fallbacks[0], newKey, "fleet3 accepts the new key (its phase-1 env)");
      await assertEveryKeyAccepted(fleet);

      assert.equal((await fleet.exec(third, `rm ${fault} && systemctl daemon-reload`)).code, 0);
      const fixed = await stack.up();
      assert.equal(fixed.code, 0, fixed.output);
      assert.deepEqual(ranCommands(fixed), ["fleet3-rollout"]);
      for (const h of fleet.hosts) assert.equal((await appKeyFingerprint(fleet, h)).secret_key, newKey, h.name);
      await assertEveryKeyAccepted(fleet);
    });

    it("an emergency: one phase, the canary then both other hosts at once; secretKeyEmergency says when each stopped accepting the old key", async () => {
      const oldKey = keyOf();
      // rollout.batches [1] (one host at a time) does not slow an emergency down.
      await stack.setConfig(configFor(`emergency-2026-12-05-${++n}`, { batches: [1] }));
      const r = await stack.up();
      assert.equal(r.code, 0, r.output);
      assert.ok(!commandSteps(r).some((c) => /^(create|update|create-replacement) .*-accept/.test(c)), "one phase");
      assertCanaryFirst(r, ["rollout"]);
      // fleet2 and fleet3 at once: each started before the other finished.
      assert.ok(stepSequence(r, "fleet3-rollout", "pre") < stepSequence(r, "fleet2-rollout", "done"));
      assert.ok(stepSequence(r, "fleet2-rollout", "pre") < stepSequence(r, "fleet3-rollout", "done"));
      for (const h of fleet.hosts) {
        const k = await appKeyFingerprint(fleet, h);
        assert.equal(k.secret_key, keyOf(), h.name);
        assert.ok(!k.fallbacks.includes(oldKey), `${h.name} no longer accepts the old key`);
      }
      const out = (await stack.stackOutput()).secretKeyEmergency as {
        oldKeyRejectedAt: Record<string, string>;
        windowSeconds: number;
      };
      log(`emergency: ${JSON.stringify(out)}`);
      assert.deepEqual(Object.keys(out.oldKeyRejectedAt).sort(), [...NAMES].sort());
      const times = NAMES.map((name) => Date.parse(out.oldKeyRejectedAt[name]));
      for (const t of times) assert.ok(Number.isFinite(t), JSON.stringify(out));
      assert.ok(times[0] < times[1] && times[0] < times[2], "the canary first");
      assert.equal(out.windowSeconds, (Math.max(...times) - Math.min(...times)) / 1000);
      assert.deepEqual(stack.leaks(), []);
    });
  },
);
