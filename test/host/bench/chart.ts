/**
 * The timeline chart: answers per 100 ms (ok vs failed) for each measured rotation, one panel
 * per run, phases marked, rendered to SVG by vega-lite + vega (headless, no canvas needed).
 */
import type { LoadResult } from "./load";

export interface Phase {
  /** ms since epoch */
  t: number;
  label: string;
}

export interface Panel {
  title: string;
  t0: number;
  load: LoadResult;
  phases: Phase[];
  /** Right end of the time axis, s (panels that should be compared share one). */
  xMax: number;
}

/** The load's bins with the empty 100 ms bins between them filled in as zeros. */
export function filledBins(load: LoadResult): LoadResult["bins"] {
  if (load.bins.length === 0) return [];
  const byT = new Map(load.bins.map((b) => [b.t, b]));
  const out: LoadResult["bins"] = [];
  for (let t = load.bins[0].t; t <= load.bins[load.bins.length - 1].t; t += 100) {
    out.push(byT.get(t) ?? { t, ok: 0, failed: 0 });
  }
  return out;
}

export async function timelineSvg(panels: Panel[]): Promise<string> {
  // Both packages are ESM with top-level await (vega-canvas): load them with import().
  const vega = await import("vega");
  // vega-lite's typings do not resolve under this project's CommonJS moduleResolution, so the
  // module is named through a variable and typed by the one call used.
  const vegaLite: string = "vega-lite";
  const vl = (await import(vegaLite)) as unknown as { compile(spec: object): { spec: object } };
  const x = (p: Panel): object => ({
    field: "s",
    type: "quantitative",
    title: "seconds since the rotation started",
    scale: { domain: [-1, Math.ceil(p.xMax)], nice: false },
  });
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    config: { font: "sans-serif", view: { stroke: "#ddd" } },
    vconcat: panels.map((p) => ({
      title: { text: p.title, anchor: "start", fontSize: 12 },
      width: 760,
      height: 110,
      layer: [
        {
          // Every 100 ms bin from the first to the last, empty ones as 0: a stepped area keeps the
          // file small (one path per series) and must not bridge a gap with the last value.
          data: {
            values: filledBins(p.load).flatMap((b) => [
              { s: (b.t - p.t0) / 1000, n: b.ok, answer: "ok (2xx)" },
              { s: (b.t - p.t0) / 1000, n: b.failed, answer: "failed" },
            ]),
          },
          mark: { type: "area", interpolate: "step-after" },
          encoding: {
            x: x(p),
            y: { field: "n", type: "quantitative", stack: "zero", title: "answers / 100 ms" },
            color: {
              field: "answer",
              type: "nominal",
              scale: { domain: ["ok (2xx)", "failed"], range: ["#4c78a8", "#e45756"] },
              title: null,
            },
          },
        },
        {
          // Labels sorted by time on four staggered lines, so close phases stay readable.
          data: {
            values: [...p.phases]
              .sort((a, b) => a.t - b.t)
              .map((ph, i) => ({ s: (ph.t - p.t0) / 1000, label: ph.label, ypx: 8 + 11 * (i % 4) })),
          },
          layer: [
            { mark: { type: "rule", color: "#555", strokeDash: [3, 3] }, encoding: { x: x(p) } },
            {
              mark: { type: "text", align: "left", dx: 2, fontSize: 9, color: "#333" },
              encoding: { x: x(p), y: { field: "ypx", type: "quantitative", scale: null }, text: { field: "label" } },
            },
          ],
        },
      ],
    })),
  };
  const compiled = vl.compile(spec).spec as Parameters<typeof vega.parse>[0];
  return new vega.View(vega.parse(compiled), { renderer: "none" }).toSVG();
}

/** One stacked bar: a checkout's (or a side's) stages, each from its start to its end, in seconds. */
export interface StageBar {
  name: string;
  segments: { label: string; fromS: number; toS: number }[];
}

/** The stages of each bar stacked along one time axis (issue 21): where a run spends its seconds. */
export async function stagesSvg(bars: StageBar[], title: string): Promise<string> {
  const vega = await import("vega");
  const vegaLite: string = "vega-lite";
  const vl = (await import(vegaLite)) as unknown as { compile(spec: object): { spec: object } };
  const labels = [...new Set(bars.flatMap((b) => b.segments.map((s) => s.label)))];
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    config: { font: "sans-serif", view: { stroke: "#ddd" }, legend: { labelLimit: 420, orient: "bottom", columns: 2 } },
    title: { text: title, anchor: "start", fontSize: 12 },
    width: 760,
    height: { step: 28 },
    data: {
      values: bars.flatMap((b) =>
        b.segments.map((s, i) => ({ bar: b.name, stage: s.label, order: i, from: s.fromS, to: s.toS })),
      ),
    },
    mark: { type: "bar", stroke: "#fff", strokeWidth: 0.5 },
    encoding: {
      y: { field: "bar", type: "nominal", title: null, sort: bars.map((b) => b.name), axis: { labelLimit: 600 } },
      x: { field: "from", type: "quantitative", title: "seconds since `pulumi up` started (medians)" },
      x2: { field: "to" },
      color: { field: "stage", type: "nominal", scale: { domain: labels, scheme: "tableau20" }, title: null },
      order: { field: "order" },
      tooltip: [{ field: "stage" }, { field: "from" }, { field: "to" }],
    },
  };
  const compiled = vl.compile(spec).spec as Parameters<typeof vega.parse>[0];
  return new vega.View(vega.parse(compiled), { renderer: "none" }).toSVG();
}
