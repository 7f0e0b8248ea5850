/**
 * The chart from a finished bench: `npx tsx test/host/bench/render.ts [bench-results/bench.json]`
 * re-renders bench-results/timeline.svg and docs/bench-timeline.svg without running anything.
 * main.ts calls the same function at the end of a run.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Panel, Phase, stagesSvg, timelineSvg } from "./chart";
import { StageTimes, stageSegments, summarize } from "./stages";
import type { LoadResult } from "./load";

const REPO = path.join(__dirname, "..", "..", "..");

/** What bench.json keeps of one measured run (see main.ts). */
export interface RunRecord {
  kind: "program" | "manual";
  hosts: number;
  doneS: number;
  ok: number;
  failed: number;
  longestGapMs: number;
  t0: number;
  phases: Phase[];
  load: LoadResult;
}

/** The chart: the median-time program and manual runs on one host (one time axis), then the fleet runs. */
export async function renderTimeline(
  program: RunRecord[],
  manual: RunRecord[],
  fleet: RunRecord[],
  batches: unknown,
): Promise<string> {
  const pick = (ms: RunRecord[]): RunRecord => [...ms].sort((a, b) => a.doneS - b.doneS)[Math.floor(ms.length / 2)];
  const pm = pick(program);
  const mm = pick(manual);
  const oneHostMax = Math.max(pm.load.endMs - pm.t0, mm.load.endMs - mm.t0) / 1000;
  const panel = (m: RunRecord, title: string, xMax: number): Panel => ({
    title,
    t0: m.t0,
    load: m.load,
    phases: m.phases,
    xMax,
  });
  const what = (m: RunRecord): string => `${m.failed} failed of ${m.ok + m.failed}, longest gap ${m.longestGapMs} ms`;
  const svg = await timelineSvg([
    panel(pm, `program, 1 host (pulumi up): ${what(pm)}`, oneHostMax),
    panel(mm, `manual guide steps 5-6, 1 host: ${what(mm)}`, oneHostMax),
    ...fleet
      .filter((m) => m.hosts > 1)
      .map((m) =>
        panel(
          m,
          `program, ${m.hosts} hosts, batches ${JSON.stringify(batches)}, through HAProxy: ${what(m)}`,
          (m.load.endMs - m.t0) / 1000,
        ),
      ),
  ]);
  fs.mkdirSync(path.join(REPO, "bench-results"), { recursive: true });
  fs.writeFileSync(path.join(REPO, "bench-results", "timeline.svg"), svg);
  fs.writeFileSync(path.join(REPO, "docs", "bench-timeline.svg"), svg);
  return svg;
}

interface BenchJson {
  batches: unknown;
  program?: Omit<RunRecord, "load">[];
  manual?: Omit<RunRecord, "load">[];
  fleet?: Omit<RunRecord, "load">[];
  timelines: { kind: string; hosts: number; t0: number; bins: LoadResult["bins"] }[];
  stages?: { runs: number; sides: { name: string; runs: { stages?: StageTimes }[] }[] };
  loads?: LoadResult[];
}

async function main(file: string): Promise<void> {
  const j = JSON.parse(fs.readFileSync(file, "utf8")) as BenchJson;
  const all = [...(j.program ?? []), ...(j.manual ?? []), ...(j.fleet ?? [])];
  // bench.json keeps each run's bins in `timelines`, in the order program, manual, fleet.
  const withLoad = all.map((m, i): RunRecord => {
    const bins = j.timelines[i].bins;
    const load: LoadResult = {
      startMs: bins[0]?.t ?? m.t0,
      endMs: (bins[bins.length - 1]?.t ?? m.t0) + 100,
      ok: m.ok,
      failed: m.failed,
      errors: {},
      longestGapMs: m.longestGapMs,
      bins,
    };
    return { ...m, load };
  });
  const np = j.program?.length ?? 0;
  const nm = j.manual?.length ?? 0;
  if (np > 0 && j.timelines) {
    await renderTimeline(withLoad.slice(0, np), withLoad.slice(np, np + nm), withLoad.slice(np + nm), j.batches);
    process.stdout.write("written bench-results/timeline.svg and docs/bench-timeline.svg\n");
  }
  if (j.stages) {
    // `--only stages`: the stacked bars again, from the runs' stage times.
    const svg = await stagesSvg(
      j.stages.sides.map((sd) => ({
        name: sd.name,
        segments: stageSegments(summarize(sd.runs.map((r) => r.stages ?? {}))),
      })),
      `pulumi up, 1 host: stages (medians of ${j.stages.runs} runs each)`,
    );
    fs.writeFileSync(path.join(REPO, "bench-results", "stages.svg"), svg);
    fs.writeFileSync(path.join(REPO, "docs", "bench-stages.svg"), svg);
    process.stdout.write("written bench-results/stages.svg and docs/bench-stages.svg\n");
  }
}

if (require.main === module) {
  main(process.argv[2] ?? path.join(REPO, "bench-results", "bench.json")).catch((e: unknown) => {
    process.stderr.write(`render failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
