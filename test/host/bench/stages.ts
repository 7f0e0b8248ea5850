/**
 * Where a `pulumi up` spends its time before and on the host (issue 21): the time from the CLI's
 * start to each stage, from the engine's event log (its events timed as they reached the file,
 * pulumi-cli.ts) and the host's journal (sshd's logins, the rollout's own progress lines).
 */
import type { CliResult, EngineEvent, TimedEvent } from "../pulumi-cli";

/** The stages in the order a run passes them; each is a time since the CLI started. */
export const STAGES = [
  ["cliUp", "CLI up (engine's first event)"],
  ["previewProgram", "preview: program starts (language host, Node.js, SDK, TypeScript)"],
  ["previewDone", "preview done (program run, plugins, plan)"],
  ["updateUp", "update: engine up"],
  ["updateProgram", "update: program starts"],
  ["firstResource", "update: first resource (config checked, preflight passed)"],
  ["pluginsReady", "update: plugins ready (last provider configured)"],
  ["secretStored", "secret stored (Secrets Manager version written)"],
  ["sshLogin", "first SSH login on the host"],
  ["hostCheck", "host: check under the new env passed"],
  ["hostRestart", "host: first restart begins"],
  ["hostDone", "host: rollout done (stable window over)"],
  ["runDone", "run done (CLI exit)"],
] as const;
export type StageKey = (typeof STAGES)[number][0];
export type StageTimes = Partial<Record<StageKey, number>>;

/** One host journal line: its time (ms since the epoch) and text. */
export interface JournalLine {
  t: number;
  text: string;
}

const eventAt = (seg: TimedEvent[], pred: (e: EngineEvent) => boolean, last = false): number | undefined => {
  const hits = seg.filter((x) => pred(x.event));
  return (last ? hits[hits.length - 1] : hits[0])?.at;
};
const isProvider = (type: string | undefined): boolean => (type ?? "").startsWith("pulumi:providers:");
const runningProgram = (e: EngineEvent): boolean =>
  /^Running program '/.test(e.diagnosticEvent?.message ?? "") && !/failed/.test(e.diagnosticEvent?.message ?? "");
const isPreviewSegment = (seg: TimedEvent[]): boolean =>
  seg.some((x) => (x.event.summaryEvent as { isPreview?: boolean } | undefined)?.isPreview === true);

/**
 * Stage times (ms since the CLI started) of one `pulumi up` from its timed event log, plus the
 * host's journal lines since the start (sshd and the rollout unit, `journalctl -o short-unix`).
 */
export function stageTimes(r: CliResult, doneAt: number, journal: JournalLine[]): StageTimes {
  const segs = r.timedEvents.filter((s) => s.length > 0);
  const preview = segs.length > 1 && isPreviewSegment(segs[0]) ? segs[0] : undefined;
  const update = segs[segs.length - 1] ?? [];
  const abs: StageTimes = {
    cliUp: segs[0]?.[0]?.at,
    previewProgram: preview ? eventAt(preview, runningProgram) : undefined,
    previewDone: preview ? eventAt(preview, (e) => e.summaryEvent !== undefined) : undefined,
    updateUp: update[0]?.at,
    updateProgram: eventAt(update, runningProgram),
    firstResource: eventAt(
      update,
      (e) =>
        e.resourcePreEvent !== undefined &&
        e.resourcePreEvent.metadata.type !== "pulumi:pulumi:Stack" &&
        !isProvider(e.resourcePreEvent.metadata.type),
    ),
    pluginsReady: eventAt(update, (e) => isProvider(e.resOutputsEvent?.metadata.type), true),
    secretStored: eventAt(
      update,
      (e) => e.resOutputsEvent?.metadata.type === "aws:secretsmanager/secretVersion:SecretVersion",
    ),
  };
  const after = (re: RegExp, from = r.startedAt): number | undefined =>
    journal.find((l) => l.t >= from && l.t <= doneAt && re.test(l.text))?.t;
  abs.sshLogin = after(/sshd(?:-session)?\[\d+\]: Accepted /);
  abs.hostCheck = after(/ check: passed/);
  abs.hostRestart = after(/ restart: \S+$/);
  abs.hostDone = after(/ (done: |already in place and proven)/);
  abs.runDone = doneAt;
  const out: StageTimes = {};
  for (const [k] of STAGES) {
    const at = abs[k];
    if (at !== undefined) out[k] = at - r.startedAt;
  }
  return out;
}

/** `journalctl -o short-unix` output as lines with their times. */
export function parseJournal(text: string): JournalLine[] {
  const out: JournalLine[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\d+\.\d+) (.*)$/.exec(line);
    if (m) out.push({ t: Math.round(Number(m[1]) * 1000), text: m[2] });
  }
  return out;
}

/**
 * The shell command that prints a host's sshd and rollout journal since `sinceMs`: two reads,
 * because journalctl ANDs matches of different fields (-t and -u) where these need either.
 */
export function journalCommand(sinceMs: number): string {
  const since = `journalctl -q -o short-unix --no-pager --since @${Math.floor(sinceMs / 1000)}`;
  return `${since} -t sshd -t sshd-session; ${since} -u 'pms-rollout-*'`;
}

export interface StageSummary {
  key: StageKey;
  label: string;
  runs: number;
  minS: number;
  medianS: number;
  maxS: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Min, median and max seconds since the start of each stage over `runs` (stages some run lacks: fewer runs). */
export function summarize(runs: StageTimes[]): StageSummary[] {
  const out: StageSummary[] = [];
  for (const [key, label] of STAGES) {
    const xs = runs.map((r) => r[key]).filter((x): x is number => x !== undefined);
    if (xs.length === 0) continue;
    out.push({
      key,
      label,
      runs: xs.length,
      minS: Math.min(...xs) / 1000,
      medianS: median(xs) / 1000,
      maxS: Math.max(...xs) / 1000,
    });
  }
  return out;
}

/** The table: one row per stage, each checkout's min / median / max seconds since the start. */
export function stagesTable(named: { name: string; summary: StageSummary[] }[]): string[][] {
  const head = ["seconds since `pulumi up` started", ...named.map((n) => `${n.name}: median (min-max)`)];
  const rows: string[][] = [head];
  for (const [key, label] of STAGES) {
    const cells = named.map((n) => {
      const s = n.summary.find((x) => x.key === key);
      return s ? `${s.medianS.toFixed(2)} (${s.minS.toFixed(2)}-${s.maxS.toFixed(2)})` : "-";
    });
    if (cells.some((c) => c !== "-")) rows.push([label, ...cells]);
  }
  return rows;
}

/** Consecutive stages of one summary as bar segments (median times; a stage never ends before the one before it). */
export function stageSegments(summary: StageSummary[]): { label: string; fromS: number; toS: number }[] {
  const segs: { label: string; fromS: number; toS: number }[] = [];
  let prev = 0;
  for (const s of summary) {
    const to = Math.max(prev, s.medianS);
    segs.push({ label: s.label, fromS: prev, toS: to });
    prev = to;
  }
  return segs;
}
