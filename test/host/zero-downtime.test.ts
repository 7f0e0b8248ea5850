/**
 * Issue 11 item 1: with gunicorn socket-activated (docs/ZERO-DOWNTIME.md: pms-backend.socket
 * holds 127.0.0.1:8000 across restarts), a rotation through the real `pulumi` CLI loses no
 * request under a constant load from autocannon, and no Celery task: the one in flight finishes,
 * the ones queued before and during the restart all run. Nothing here asserts a timing.
 *
 *   node --import tsx --test test/host/zero-downtime.test.ts     (root, Linux)
 */
import assert from "node:assert/strict";
import { hostSuite } from "./suite";
import { DEFAULT_LOAD, startLoad } from "./bench/load";
import { PulumiStack } from "./pulumi-cli";
import { appKeyFingerprint, fleetConfig, keyFingerprint, unavailable, waitForTaskRow } from "./scenario";
import { bootFleet, hostTestsUnavailableReason, PUBLIC_HOST, TestFleet, verboseLog } from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;

/** The stack config with `app.socketUnit` set, as docs/ZERO-DOWNTIME.md tells the operator. */
function withSocket(config: Record<string, unknown>): Record<string, unknown> {
  return { ...config, app: { ...(config.app as object), socketUnit: "pms-backend.socket" } };
}

describe("socket activation: zero failed requests during a rotation", { skip }, () => {
  let fleet: TestFleet;
  let stack: PulumiStack;
  before(async () => {
    fleet = await bootFleet(["sock1"], log, { variant: ["socket", "envfile"], httpHost: "public" });
    stack = await PulumiStack.create({ stack: "zero-downtime", log });
  });
  after(async () => {
    await stack?.dispose();
    await fleet?.teardown();
  });

  it("the host holds the socket in systemd and gunicorn inherits it", async () => {
    const [h] = fleet.hosts;
    const r = await fleet.exec(
      h,
      "systemctl is-active pms-backend.socket pms-backend.service && systemctl show -p Requires -p After --value pms-backend.service && systemctl show -p Listen --value pms-backend.socket",
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /pms-backend\.socket/);
    assert.match(r.stdout, /127\.0\.0\.1:8000 \(Stream\)/);
  });

  it("a rotation under constant load: every request answered 2xx, every Celery task done", async () => {
    const [h] = fleet.hosts;
    const mainPid = async (): Promise<string> =>
      (await fleet.exec(h, "systemctl show -p MainPID --value pms-backend.service")).stdout.trim();
    let config = withSocket(fleetConfig(fleet, [h], { stableSeconds: 3 }));
    await stack.setConfig(config);
    const first = await stack.up();
    assert.equal(first.code, 0, first.output);
    assert.match(
      first.output,
      /socket: pms-backend\.service is activated by pms-backend\.socket \(127\.0\.0\.1:8000 \(Stream\)\)/,
    );

    config = { ...config, rotate: { SECRET_KEY: "zero-downtime-1" } };
    await stack.setConfig(config);
    const load = await startLoad({ netns: `th-${h.id}`, port: 8000, hostHeader: PUBLIC_HOST, ...DEFAULT_LOAD });
    // A task that is still running when Celery gets SIGTERM, and tasks queued around the restart.
    const enqueue = async (p: string): Promise<void> => {
      const r = await fleet.http(h, p, { method: "POST" });
      if (r.status !== 202) {
        const j = await fleet.exec(h, "journalctl -u pms-backend.service -n 8 --no-pager -o cat");
        assert.fail(`${p}: ${r.status}; the app's log says:\n${j.stdout}`);
      }
    };
    await enqueue("/slow-task/?id=zd-in-flight&seconds=4");
    for (let i = 0; i < 3; i++) await enqueue(`/task/?id=zd-before-${i}`);
    const pidBefore = await mainPid();
    const up = await stack.up();
    for (let i = 0; i < 3; i++) await enqueue(`/task/?id=zd-after-${i}`);
    // Keep the load on a little past the run, so answers queued during the restart are counted.
    await new Promise((res) => setTimeout(res, 1500));
    const result = await load.stop();
    assert.equal(up.code, 0, up.output);
    assert.equal(
      (await appKeyFingerprint(fleet, h)).secret_key,
      keyFingerprint(stack.generatedValue("SECRET_KEY")),
      "the app serves the new key",
    );
    log(`load: ${result.ok} ok, ${result.failed} failed, longest gap ${result.longestGapMs} ms`);
    assert.equal(result.failed, 0, `failed requests: ${JSON.stringify(result.errors)}`);
    assert.ok(result.ok > 100, `the load generator got answers (${result.ok})`);
    assert.notEqual(await mainPid(), pidBefore, "gunicorn was restarted (a new main process)");
    assert.ok(
      result.bins.some((b) => b.t > result.startMs + 1000 && b.ok > 0) && result.bins.at(-1)!.ok > 0,
      "answers kept coming after the restart",
    );
    for (const id of [
      "zd-in-flight",
      "zd-before-0",
      "zd-before-1",
      "zd-before-2",
      "zd-after-0",
      "zd-after-1",
      "zd-after-2",
    ]) {
      assert.ok(await waitForTaskRow(fleet, h, id, 30000), `Celery task ${id} ran`);
    }
    assert.deepEqual(stack.leaks(), []);
  });

  it("app.socketUnit refuses, before any change, a host whose socket an operator stopped and a host where gunicorn binds its own port", async () => {
    const [h] = fleet.hosts;
    const plain = await bootFleet(["sock2"], log, { variant: ["envfile"], httpHost: "public" });
    const other = await PulumiStack.create({ stack: "zero-downtime-plain", log });
    try {
      const [p] = plain.hosts;
      await other.setConfig(withSocket(fleetConfig(plain, [p], { stableSeconds: 3 })));
      const envBefore = (await plain.exec(p, "sha256sum /srv/pms-backend/.env.production")).stdout;
      const r = await other.up();
      assert.notEqual(r.code, 0);
      assert.match(
        r.output,
        /pms-rollout FAILED host=sock2 service=pms-backend check=socket: (pms-backend\.service is not activated by pms-backend\.socket|systemd has no loaded unit pms-backend\.socket).*nothing on the host was changed/,
      );
      assert.equal((await plain.exec(p, "sha256sum /srv/pms-backend/.env.production")).stdout, envBefore);
      assert.deepEqual(other.leaks(), []);
    } finally {
      await other.dispose();
      await plain.teardown();
    }

    // An operator stopped the socket on the socket host: the next rotation refuses to start.
    assert.equal((await fleet.exec(h, "systemctl stop pms-backend.socket")).code, 0);
    try {
      await stack.setConfig(
        withSocket({ ...fleetConfig(fleet, [h], { stableSeconds: 3 }), rotate: { SECRET_KEY: "zero-downtime-2" } }),
      );
      const pidBefore = (await fleet.exec(h, "systemctl show -p MainPID --value pms-backend.service")).stdout;
      const r = await stack.up();
      assert.notEqual(r.code, 0);
      assert.match(
        r.output,
        /pms-rollout FAILED host=sock1 service=pms-backend check=socket: pms-backend\.socket is inactive, not listening.*nothing on the host was changed/,
      );
      assert.equal(
        (await fleet.exec(h, "systemctl show -p MainPID --value pms-backend.service")).stdout,
        pidBefore,
        "gunicorn was not restarted",
      );
    } finally {
      await fleet.exec(h, "systemctl start pms-backend.socket pms-backend.service");
    }
  });
});
