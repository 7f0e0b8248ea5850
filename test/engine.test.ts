/**
 * The engine model used by the host tests (test/host/engine.ts), checked
 * against the command and random providers' rules in
 * ../shared/notes/pulumi-pitfalls.md, without any host: remote commands are
 * recorded instead of run.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { EngineModel, planCommand, ResourceState, CommandConnection } from "./host/engine";
import { baseConfig, defined } from "./fixtures";

const prior = (inputs: Record<string, unknown>, initError = false): ResourceState => ({
  type: "command:remote:Command",
  name: "x",
  inputs,
  outputs: {},
  initError,
});

test("planCommand: create, same, update on any non-trigger input, replace on triggers, retry after failure", () => {
  const base = { create: "c", stdin: "s", triggers: ["env:1"], connection: { host: "a" } };
  assert.equal(planCommand(undefined, base), "create");
  assert.equal(planCommand(prior(base), { ...base }), "same");
  assert.equal(planCommand(prior(base), { ...base, stdin: "t" }), "update");
  assert.equal(
    planCommand(prior(base), { ...base, connection: { host: "b" } }),
    "update",
    "pulumi-command#447: a connection change re-runs",
  );
  assert.equal(planCommand(prior(base), { ...base, triggers: ["env:2"] }), "replace");
  assert.equal(planCommand(prior(base, true), { ...base }), "update", "a failed create/update is retried");
});

class RecordingEngine extends EngineModel {
  calls: Array<{ command: string; stdin?: string; host: string }> = [];
  failNext = false;
  override runRemote(conn: CommandConnection, command: string, stdin: string | undefined) {
    this.calls.push({ command, stdin, host: conn.host });
    const code = this.failNext ? 1 : 0;
    return Promise.resolve({
      code,
      stdout: "",
      stderr: code ? "pms-rollout FAILED host=web1 service=pms-backend check=health-url: x" : "",
    });
  }
}

const config = (over: Record<string, unknown> = {}) => defined(baseConfig("dev", over));

test("engine model: first run creates every host in order; a re-run runs nothing", async () => {
  const e = new RecordingEngine("dev");
  const first = await e.up(config());
  assert.deepEqual(
    first.ran.map((s) => `${s.op} ${s.name}`),
    ["create web1-rollout", "create web2-rollout"],
  );
  e.calls = [];
  const again = await e.up(config());
  assert.equal(again.ran.length, 0);
  assert.equal(e.calls.length, 0);
  e.dispose();
});

test("engine model: a keeper change draws a new value and replaces every host's rollout; other values are kept", async () => {
  const e = new RecordingEngine("dev");
  await e.up(config());
  const before = e.state.get("generated-SECRET_KEY")?.outputs.result;
  const jwtBefore = e.state.get("generated-JWT_SIGNING_KEY")?.outputs.result;
  const r = await e.up(config({ rotate: { SECRET_KEY: "2026-11-25" } }));
  assert.notEqual(e.state.get("generated-SECRET_KEY")?.outputs.result, before);
  assert.equal(e.state.get("generated-JWT_SIGNING_KEY")?.outputs.result, jwtBefore);
  assert.deepEqual(
    r.ran.map((s) => `${s.op} ${s.name}`),
    ["replace web1-rollout", "replace web2-rollout"],
  );
  e.dispose();
});

test("engine model: a failed rollout stops the later hosts and is retried on the next run", async () => {
  const e = new RecordingEngine("dev");
  await e.up(config());
  e.failNext = true;
  const failed = await e.up(config({ rotation: "2026-12-01" }));
  assert.equal(failed.ok, false);
  assert.deepEqual(
    failed.steps.filter((s) => s.type === "command:remote:Command").map((s) => `${s.op} ${s.name} ${s.ok}`),
    ["replace web1-rollout false", "skipped web2-rollout true"],
  );
  assert.match(failed.errors[0], /host=web1 service=pms-backend check=health-url/);
  e.failNext = false;
  const retry = await e.up(config({ rotation: "2026-12-01" }));
  assert.deepEqual(
    retry.ran.map((s) => `${s.op} ${s.name}`),
    ["update web1-rollout", "replace web2-rollout"],
  );
  assert.equal(retry.ok, true);
  e.dispose();
});

test("engine model: replacement runs the new create, then the OLD delete", async () => {
  const e = new RecordingEngine("dev");
  await e.up(config());
  // Plant a delete in the stored state, as an older program version might have had.
  const st = e.state.get("web1-rollout");
  assert.ok(st);
  st.inputs = { ...st.inputs, delete: "OLD-DELETE" };
  e.calls = [];
  await e.up(config({ rotation: "2026-12-02" }));
  const web1 = e.calls
    .filter((c) => c.host === "10.0.0.11")
    .map((c) => (c.command === "OLD-DELETE" ? "delete(old)" : "create(new)"));
  assert.deepEqual(web1, ["create(new)", "delete(old)"]);
  e.dispose();
});
