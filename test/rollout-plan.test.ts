import { test } from "node:test";
import assert from "node:assert/strict";
import { parseRollout } from "../components/config/rollout";
import { describeBatches, planBatches, planBatchesAfter, planRollout } from "../components/rollout-plan";
import { emergencyWindowOf } from "../components/stack";
import { oldKeyRejectedAt } from "../components/host-rollout";
import { assertProblem, check } from "./config-check";
import { baseConfig, defined } from "./fixtures";
import { runProgram, TEST_HOST_KEY, TYPES } from "./harness";

const hosts = (n: number): string[] => Array.from({ length: n }, (_, i) => `web${i + 1}`);
const sizes = (n: readonly (readonly unknown[])[]): number[] => n.map((b) => b.length);

test("default: one host at a time, in config order", () => {
  assert.deepEqual(planBatches(hosts(3)), [["web1"], ["web2"], ["web3"]]);
});

test("canary then 50%: percentages of all hosts, rounded up; the last size repeats", () => {
  const b = [{ hosts: 1 }, { percent: 50 }];
  assert.deepEqual(sizes(planBatches(hosts(6), b)), [1, 3, 2]);
  assert.deepEqual(sizes(planBatches(hosts(3), b)), [1, 2]);
  assert.deepEqual(sizes(planBatches(hosts(1), b)), [1]);
  assert.deepEqual(planBatches(hosts(6), b).flat(), hosts(6), "every host exactly once, config order");
  assert.deepEqual(sizes(planBatches(hosts(10), [{ hosts: 1 }, { hosts: 2 }, { percent: 100 }])), [1, 2, 7]);
  assert.deepEqual(sizes(planBatches(hosts(5), [{ percent: 1 }])), [1, 1, 1, 1, 1]);
  assert.deepEqual(planBatches([], b), []);
});

test("rollout.batches parses numbers and percentages, as YAML or as strings", () => {
  const r = check((p) => parseRollout(p, { batches: [1, "50%", "2"] }));
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.result.batches, [{ hosts: 1 }, { percent: 50 }, { hosts: 2 }]);
  assert.equal(describeBatches(r.result.batches), '[1, "50%", 2]');
  assert.deepEqual(check((p) => parseRollout(p, undefined)).result.batches, [{ hosts: 1 }]);
  assert.deepEqual(check((p) => parseRollout(p, {})).result.batches, [{ hosts: 1 }]);
});

test("bad batch sizes are each reported with the key and a fix", () => {
  const r = check((p) => parseRollout(p, { batches: [0, "150%", "half", 1.5, 2], serial: 1 }));
  for (const i of [0, 1, 2, 3]) assertProblem(r.problems, `rollout.batches[${i}]`, /is not a batch size/);
  assertProblem(r.problems, "rollout.serial", /is not a setting of rollout/);
  assert.equal(r.problems.length, 5);
  assertProblem(check((p) => parseRollout(p, { batches: [] })).problems, "rollout.batches", /non-empty list/);
  assertProblem(check((p) => parseRollout(p, "1")).problems, "rollout", /must be an object/);
});

test("program: canary, then batches in parallel; each batch waits for the whole batch before it", async () => {
  const fleet = ["web1", "web2", "web3", "web4", "web5", "web6"].map((name, i) => ({
    name,
    address: `10.0.0.${21 + i}`,
    hostKey: TEST_HOST_KEY,
  }));
  const r = await runProgram({
    stack: "dev",
    config: defined(baseConfig("dev", { hosts: fleet, rollout: { batches: [1, "50%"] } })),
  });
  const deps = (h: string): string[] =>
    r
      .find(TYPES.command, `${h}-rollout`)
      .dependsOn.filter((d) => d.endsWith("-rollout"))
      .sort();
  for (const h of fleet.map((f) => f.name)) {
    assert.ok(r.find(TYPES.command, `${h}-rollout`).dependsOn.includes("store-version"), h);
  }
  assert.deepEqual(deps("web1"), [], "the canary goes first");
  for (const h of ["web2", "web3", "web4"])
    assert.deepEqual(deps(h), ["web1-rollout"], `${h}: batch 2 after the canary`);
  for (const h of ["web5", "web6"]) {
    assert.deepEqual(deps(h), ["web2-rollout", "web3-rollout", "web4-rollout"], `${h}: batch 3 after all of batch 2`);
  }
});

test("program: without rollout.batches hosts still roll one after another", async () => {
  const r = await runProgram({ stack: "dev", config: defined(baseConfig("dev")) });
  assert.deepEqual(
    r.find(TYPES.command, "web2-rollout").dependsOn.filter((d) => d.endsWith("-rollout")),
    ["web1-rollout"],
  );
});

test("planBatchesAfter: the chosen host first and alone, then the sizes over the others in config order; no match is planBatches", () => {
  const b = [{ hosts: 1 }, { percent: 50 }];
  assert.deepEqual(
    planBatchesAfter(hosts(5), b, (h) => h === "web3"),
    [["web3"], ["web1"], ["web2", "web4"], ["web5"]],
  );
  assert.deepEqual(
    planBatchesAfter(hosts(3), [{ hosts: 2 }], (h) => h === "web1"),
    [["web1"], ["web2", "web3"]],
  );
  assert.deepEqual(
    planBatchesAfter(hosts(1), b, (h) => h === "web1"),
    [["web1"]],
  );
  assert.deepEqual(
    planBatchesAfter(hosts(4), b, () => false),
    planBatches(hosts(4), b),
  );
  assert.deepEqual(planBatchesAfter(hosts(4), b), planBatches(hosts(4), b));
});

test("program: a shared database's admin host (generated.DB_PASSWORD.adminHost) rolls first and alone, before the configured batches", async () => {
  const fleet = ["web1", "web2", "web3", "web4"].map((name, i) => ({
    name,
    address: `10.0.0.${21 + i}`,
    hostKey: TEST_HOST_KEY,
  }));
  const config = baseConfig("dev", { hosts: fleet, rollout: { batches: ["50%"] } });
  const secrets = { ...(config.secrets as Record<string, unknown>) };
  delete secrets.DB_PASSWORD;
  config.secrets = secrets;
  config.generated = { ...(config.generated as object), DB_PASSWORD: { adminHost: "web3" } };
  config.env = { ...(config.env as object), DB_HOST: "10.0.0.23" };
  const r = await runProgram({ stack: "dev", config: defined(config) });
  const deps = (h: string): string[] =>
    r
      .find(TYPES.command, `${h}-rollout`)
      .dependsOn.filter((d) => d.endsWith("-rollout"))
      .sort();
  assert.deepEqual(deps("web3"), [], "the admin host goes first");
  for (const h of ["web1", "web2"]) assert.deepEqual(deps(h), ["web3-rollout"], `${h}: after the admin host`);
  for (const h of ["web4"]) assert.deepEqual(deps(h), ["web1-rollout", "web2-rollout"], `${h}: after batch 2`);
});

// --- SECRET_KEY phases (issue 20) -----------------------------------------------------------

const flat = <T>(phases: { step: string; batches: T[][] }[]): string[] =>
  phases.map((p) => `${p.step}:${p.batches.map((b) => b.join("+")).join(" > ")}`);

test("planRollout: more than one host, routine: accept on every host (canary + batches), then rollout (canary + batches)", () => {
  const b = [{ hosts: 1 }, { percent: 50 }];
  assert.deepEqual(flat(planRollout(hosts(6), { batches: b })), [
    "accept:web1 > web2+web3+web4 > web5+web6",
    "rollout:web1 > web2+web3+web4 > web5+web6",
  ]);
  assert.deepEqual(flat(planRollout(hosts(2))), ["accept:web1 > web2", "rollout:web1 > web2"], "default: two phases");
  assert.deepEqual(
    flat(planRollout(hosts(3), { batches: b, first: (h) => h === "web3" })),
    ["accept:web3 > web1 > web2", "rollout:web3 > web1 > web2"],
    "the admin host leads each phase",
  );
});

test("planRollout: one host, or secretKeyPhases 1, keeps one phase", () => {
  assert.deepEqual(flat(planRollout(hosts(1))), ["rollout:web1"]);
  assert.deepEqual(flat(planRollout(hosts(3), { secretKeyPhases: 1 })), ["rollout:web1 > web2 > web3"]);
  assert.deepEqual(flat(planRollout([], {})), ["rollout:"]);
});

test("planRollout: an emergency is one phase, the canary then every other host at once, whatever the batches", () => {
  const one = [{ hosts: 1 }];
  assert.deepEqual(flat(planRollout(hosts(5), { batches: one, emergency: true })), [
    "rollout:web1 > web2+web3+web4+web5",
  ]);
  assert.deepEqual(flat(planRollout(hosts(5), { batches: [{ hosts: 2 }], emergency: true, secretKeyPhases: 2 })), [
    "rollout:web1 > web2+web3+web4+web5",
  ]);
  assert.deepEqual(flat(planRollout(hosts(4), { emergency: true, first: (h) => h === "web3" })), [
    "rollout:web3 > web1+web2+web4",
  ]);
  assert.deepEqual(flat(planRollout(hosts(1), { emergency: true })), ["rollout:web1"]);
});

test("rollout.secretKeyPhases: 1 or 2 (default 2); anything else is a problem naming the key and the fix", () => {
  assert.equal(check((p) => parseRollout(p, undefined)).result.secretKeyPhases, 2);
  assert.equal(check((p) => parseRollout(p, { secretKeyPhases: 1 })).result.secretKeyPhases, 1);
  assert.equal(check((p) => parseRollout(p, { secretKeyPhases: "2", batches: [1] })).result.secretKeyPhases, 2);
  for (const bad of [0, 3, "two", true]) {
    const r = check((p) => parseRollout(p, { secretKeyPhases: bad }));
    const line = assertProblem(r.problems, "rollout.secretKeyPhases", /is not 1 or 2/);
    assert.match(line, /pulumi config set --path rollout\.secretKeyPhases 2/);
  }
});

const fleetOf = (n: number) =>
  hosts(n).map((name, i) => ({ name, address: `10.0.0.${21 + i}`, hostKey: TEST_HOST_KEY }));

/** Names of rollout/accept commands `name` depends on, sorted. */
function commandDeps(r: Awaited<ReturnType<typeof runProgram>>, name: string): string[] {
  return r
    .find(TYPES.command, name)
    .dependsOn.filter((d) => /-(rollout|accept)$/.test(d))
    .sort();
}

test("program: two phases; every <host>-rollout depends on every <host>-accept; canary + batches within each phase", async () => {
  const r = await runProgram({
    stack: "dev",
    config: defined(baseConfig("dev", { hosts: fleetOf(4), rollout: { batches: [1, "50%"] } })),
  });
  const accepts = ["web1-accept", "web2-accept", "web3-accept", "web4-accept"];
  assert.deepEqual(commandDeps(r, "web1-accept"), [], "phase 1 canary first");
  for (const h of ["web2", "web3"]) assert.deepEqual(commandDeps(r, `${h}-accept`), ["web1-accept"], h);
  assert.deepEqual(commandDeps(r, "web4-accept"), ["web2-accept", "web3-accept"]);
  assert.deepEqual(commandDeps(r, "web1-rollout"), accepts, "phase 2 canary after all of phase 1");
  for (const h of ["web2", "web3"])
    assert.deepEqual(commandDeps(r, `${h}-rollout`), [...accepts, "web1-rollout"].sort(), h);
  assert.deepEqual(commandDeps(r, "web4-rollout"), [...accepts, "web2-rollout", "web3-rollout"].sort());
  for (const h of hosts(4)) {
    const accept = r.find(TYPES.command, `${h}-accept`);
    const rollout = r.find(TYPES.command, `${h}-rollout`);
    assert.ok(accept.dependsOn.includes("store-version"), h);
    assert.match(String(accept.inputs.create), / --secret-key-accept /, "phase 1 runs the accept mode");
    assert.doesNotMatch(String(rollout.inputs.create), /--secret-key-accept/);
    assert.deepEqual(accept.inputs.triggers, rollout.inputs.triggers, "both change exactly when the env file changes");
    assert.deepEqual(accept.inputs.stdin, rollout.inputs.stdin, "the same env, by stdin only");
  }
});

test("program: one host, or rollout.secretKeyPhases 1, registers no accept command (today's single phase)", async () => {
  const one = await runProgram({ stack: "dev", config: defined(baseConfig("dev", { hosts: fleetOf(1) })) });
  assert.equal(one.ofType(TYPES.command).filter((c) => c.name.endsWith("-accept")).length, 0);
  const single = await runProgram({
    stack: "dev",
    config: defined(baseConfig("dev", { hosts: fleetOf(3), rollout: { secretKeyPhases: 1 } })),
  });
  assert.deepEqual(
    single
      .ofType(TYPES.command)
      .map((c) => c.name)
      .sort(),
    ["web1-rollout", "web2-rollout", "web3-rollout"],
  );
  assert.deepEqual(commandDeps(single, "web2-rollout"), ["web1-rollout"]);
});

test("program: an emergency is one phase, the canary then every other host at once, and reports when each host stopped accepting the old key", async () => {
  const times: Record<string, string> = {
    "web1-rollout": "2026-12-05T10:00:00.250Z",
    "web2-rollout": "2026-12-05T10:00:09.000Z",
    "web3-rollout": "2026-12-05T10:00:10.750Z",
  };
  const r = await runProgram({
    stack: "dev",
    config: defined(
      baseConfig("dev", {
        hosts: fleetOf(3),
        rollout: { batches: [1] },
        rotate: { SECRET_KEY: "emergency-2026-12-05" },
      }),
    ),
    computedOutputs: (type, name) =>
      type === TYPES.command && times[name]
        ? {
            stdout: `pms-rollout[x] +1.000s secret key: the old key is rejected by pms-backend since ${times[name]} (emergency)\n`,
          }
        : undefined,
  });
  assert.equal(r.ofType(TYPES.command).filter((c) => c.name.endsWith("-accept")).length, 0, "one phase");
  assert.deepEqual(commandDeps(r, "web1-rollout"), []);
  assert.deepEqual(commandDeps(r, "web2-rollout"), ["web1-rollout"]);
  assert.deepEqual(commandDeps(r, "web3-rollout"), ["web1-rollout"], "not after web2: every other host at once");
  assert.deepEqual(r.outputs.secretKeyEmergency, {
    oldKeyRejectedAt: { web1: times["web1-rollout"], web2: times["web2-rollout"], web3: times["web3-rollout"] },
    windowSeconds: 10.5,
  });
  assert.ok(
    !r.secretOutputs.some((o) => o.startsWith("secretKeyEmergency")),
    `plain output: ${r.secretOutputs.join(",")}`,
  );
});

test("program: a routine run has no emergency report", async () => {
  const r = await runProgram({ stack: "dev", config: defined(baseConfig("dev")) });
  assert.equal(r.outputs.secretKeyEmergency, undefined);
});

test("emergencyWindowOf: first to last in seconds; -1 when a host has no time", () => {
  assert.deepEqual(emergencyWindowOf({ a: "2026-01-01T00:00:01.000Z", b: "2026-01-01T00:00:00.500Z" }), {
    oldKeyRejectedAt: { a: "2026-01-01T00:00:01.000Z", b: "2026-01-01T00:00:00.500Z" },
    windowSeconds: 0.5,
  });
  assert.equal(emergencyWindowOf({ a: "2026-01-01T00:00:01.000Z" }).windowSeconds, 0);
  assert.equal(emergencyWindowOf({ a: "2026-01-01T00:00:01.000Z", b: "" }).windowSeconds, -1);
  assert.equal(oldKeyRejectedAt("secret key: unchanged; 1 fallback(s) kept"), "");
  assert.equal(oldKeyRejectedAt(undefined), "");
});
