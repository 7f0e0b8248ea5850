import { test } from "node:test";
import assert from "node:assert/strict";
import { parseRollout } from "../components/config/rollout";
import { describeBatches, planBatches, planBatchesAfter } from "../components/rollout-plan";
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
