/**
 * Issue 11 item 2 on real hosts, through the real `pulumi` CLI: three socket-activated hosts
 * behind a real HAProxy (Debian's package, in a network namespace of its own, health-checking
 * /health/), `rollout.batches: [1, "50%"]`. A rotation under constant load through the balancer
 * loses no request; the canary finishes before the next batch starts; a canary that fails (a unit
 * someone edited by hand) stops the run before any other host is touched, and the next run, once
 * the host is fixed, converges the fleet. Nothing here asserts a timing.
 *
 *   node --import tsx --test test/host/fleet.test.ts     (root, Linux)
 */
import assert from "node:assert/strict";
import { hostSuite } from "./suite";
import { Balancer, BALANCER_PORT } from "./bench/balancer";
import { DEFAULT_LOAD, startLoad } from "./bench/load";
import { CliResult, commandSteps, PulumiStack, stepSequence } from "./pulumi-cli";
import { appKeyFingerprint, ENV_FILE, fleetConfig, hostFile, keyFingerprint, unavailable } from "./scenario";
import { bootFleet, hostTestsUnavailableReason, PUBLIC_HOST, TestFleet, TestHost, verboseLog } from "./testhost";

const skip = unavailable(hostTestsUnavailableReason());
const { after, before, describe, it } = hostSuite(skip);
const log = verboseLog;
const NAMES = ["canary", "fleet2", "fleet3"];

/** Asserts the canary's rollout finished before any other host's started, in the run's event stream. */
function assertCanaryFirst(r: CliResult): void {
  const canaryDone = stepSequence(r, "canary-rollout", "done");
  for (const name of NAMES.slice(1)) {
    assert.ok(stepSequence(r, `${name}-rollout`, "pre") > canaryDone, `${name} started after the canary finished`);
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
      NAMES.map((n) => `create-replacement ${n}-rollout`).sort(),
      "every host's rollout ran",
    );
    assertCanaryFirst(r);
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
    assert.deepEqual(commandSteps(failed), ["create-replacement canary-rollout FAILED"], "only the canary ran");
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
