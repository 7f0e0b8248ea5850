/** The bench's stage breakdown (issue 21): stages from a timed event log and the host's journal. */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { CliResult, EngineEvent, TimedEvent } from "../test/host/pulumi-cli";
import { stagesSvg } from "../test/host/bench/chart";
import {
  journalCommand,
  parseJournal,
  stageSegments,
  stagesTable,
  stageTimes,
  summarize,
} from "../test/host/bench/stages";

const T0 = 1_800_000_000_000;
const ev = (at: number, event: Partial<EngineEvent>): TimedEvent => ({ at: T0 + at, event: { sequence: 0, ...event } });
const pre = (type: string, name = "x"): Partial<EngineEvent> => ({
  resourcePreEvent: { metadata: { op: "update", urn: `urn::${name}`, type } },
});
const outs = (type: string): Partial<EngineEvent> => ({
  resOutputsEvent: { metadata: { op: "update", urn: "urn::x", type } },
});
const diag = (message: string): Partial<EngineEvent> => ({ diagnosticEvent: { message, severity: "debug" } });

/** A `pulumi up`: its preview segment, then its update's, as the harness records them. */
function upResult(): CliResult {
  const preview = [
    ev(900, { preludeEvent: {} }),
    ev(1500, pre("pulumi:pulumi:Stack")),
    ev(3200, diag("Running program '/p/bin/index.js' in pwd '/p' w/ args: \n")),
    ev(3900, { summaryEvent: { isPreview: true } as object }),
  ];
  const update = [
    ev(4100, { preludeEvent: {} }),
    ev(4800, pre("pulumi:pulumi:Stack")),
    ev(5300, diag("Running program '/p/bin/index.js' in pwd '/p' w/ args: \n")),
    ev(6000, pre("pulumi:providers:random")),
    ev(6100, pre("pms:secrets:SecretStore", "store")),
    ev(6200, outs("pulumi:providers:random")),
    ev(6600, outs("pulumi:providers:aws")),
    ev(6900, outs("aws:secretsmanager/secretVersion:SecretVersion")),
    ev(7300, outs("pulumi:providers:command")),
  ];
  return {
    args: [],
    code: 0,
    stdout: "",
    stderr: "",
    output: "",
    ms: 0,
    events: update.map((x) => x.event),
    timedEvents: [preview, update],
    startedAt: T0,
    timedOut: false,
  };
}

const at = (ms: number): string => (ms / 1000).toFixed(6);
const JOURNAL = [
  `${at(T0 - 5000)} bench1 sshd[10]: Accepted publickey for root from 10.0.0.1`,
  `${at(T0 + 7450)} bench1 sshd-session[11]: Accepted publickey for root from 10.0.0.1`,
  `${at(T0 + 7600)} bench1 sshd-session[12]: Accepted publickey for root from 10.0.0.1`,
  `${at(T0 + 8000)} bench1 bash[13]: pms-rollout[bench1] +0.300s check: running the check command`,
  `${at(T0 + 9500)} bench1 bash[13]: pms-rollout[bench1] +1.800s check: passed`,
  `${at(T0 + 9800)} bench1 bash[13]: pms-rollout[bench1] +2.100s restart: pms-backend`,
  `${at(T0 + 9900)} bench1 bash[13]: pms-rollout[bench1] +2.200s restart: pms-backend is up and its health URLs answered 2xx`,
  `${at(T0 + 15500)} bench1 bash[13]: pms-rollout[bench1] +7.800s done: /etc/pms-backend/.env.production in place and proven`,
  `${at(T0 + 17000)} bench1 sshd-session[14]: Accepted publickey for root from 10.0.0.1`,
].join("\n");

test("stages of one pulumi up: preview and update from the event log, SSH and host stages from the journal", () => {
  const s = stageTimes(upResult(), T0 + 16000, parseJournal(JOURNAL));
  assert.deepEqual(s, {
    cliUp: 900,
    previewProgram: 3200,
    previewDone: 3900,
    updateUp: 4100,
    updateProgram: 5300,
    firstResource: 6100, // the store: neither the stack nor a provider
    pluginsReady: 7300, // the last provider configured
    secretStored: 6900,
    sshLogin: 7450, // the first login after the start (the bench's own reading before it is not one)
    hostCheck: 9500,
    hostRestart: 9800, // "restart: <unit>", not its later "is up" line
    hostDone: 15500,
    runDone: 16000, // a login after the run (the bench's reading) is no stage
  });
});

test("a run without a preview segment (--skip-preview) has no preview stages; the update's stay", () => {
  const r = upResult();
  r.timedEvents = [r.timedEvents[1]];
  const s = stageTimes(r, T0 + 16000, []);
  assert.equal(s.previewProgram, undefined);
  assert.equal(s.cliUp, 4100);
  assert.equal(s.updateProgram, 5300);
  assert.equal(s.sshLogin, undefined);
});

test("min / median / max per stage, a table per checkout and bars that never run backwards", async () => {
  const runs = [{ cliUp: 1000, sshLogin: 7000 }, { cliUp: 3000, sshLogin: 5000 }, { cliUp: 2000 }];
  const sum = summarize(runs);
  assert.deepEqual(
    sum.map((x) => [x.key, x.runs, x.minS, x.medianS, x.maxS]),
    [
      ["cliUp", 3, 1, 2, 3],
      ["sshLogin", 2, 5, 6, 7],
    ],
  );
  const rows = stagesTable([
    { name: "base", summary: sum },
    { name: "new", summary: summarize([{ cliUp: 500 }]) },
  ]);
  assert.deepEqual(rows[1], ["CLI up (engine's first event)", "2.00 (1.00-3.00)", "0.50 (0.50-0.50)"]);
  assert.deepEqual(rows[2], ["first SSH login on the host", "6.00 (5.00-7.00)", "-"]);
  const segs = stageSegments([...sum, { ...sum[1], key: "hostCheck", label: "host check", medianS: 4 }]);
  assert.deepEqual(
    segs.map((x) => [x.fromS, x.toS]),
    [
      [0, 2],
      [2, 6],
      [6, 6],
    ],
  );
  const svg = await stagesSvg([{ name: "base", segments: segs }], "stages");
  assert.match(svg, /^<svg/);
  assert.match(svg, /first SSH login on the host/);
});

test("the event log is followed as it grows; pulumi up's re-creation of the file for its update starts a second segment", async () => {
  const fs = await import("node:fs");
  const os = await import("node:os");
  const path = await import("node:path");
  const { tailEvents } = await import("../test/host/pulumi-cli");
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pms-tail-")), "events.jsonl");
  const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 120));
  const tail = tailEvents(file);
  await tick();
  fs.writeFileSync(file, '{"sequence":0,"preludeEvent":{}}\n{"sequence":1,"summaryEvent":{}}\n');
  await tick();
  fs.appendFileSync(file, '{"sequence":2,"cancelEvent":{}}\n{"sequence":3,');
  await tick();
  const t1 = Date.now();
  fs.writeFileSync(file, '{"sequence":0,"preludeEvent":{}}\n'); // the update re-creates the file
  await tick();
  const segs = tail.stop();
  assert.deepEqual(
    segs.map((s) => s.map((x) => x.event.sequence)),
    [[0, 1, 2], [0]],
  );
  assert.ok(segs[1][0].at >= t1, "the update's event is timed when it was written, not before");
  assert.ok(segs[0][0].at <= segs[0][2].at);
});

test("the journal command reads sshd and the rollout units separately (journalctl ANDs -t with -u)", () => {
  const cmd = journalCommand(T0 + 1500);
  const reads = cmd.split("; ");
  assert.equal(reads.length, 2);
  assert.match(reads[0], /^journalctl -q -o short-unix --no-pager --since @1800000001 -t sshd -t sshd-session$/);
  assert.match(reads[1], /^journalctl -q -o short-unix --no-pager --since @1800000001 -u 'pms-rollout-\*'$/);
});
