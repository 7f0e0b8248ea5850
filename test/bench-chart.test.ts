import { test } from "node:test";
import assert from "node:assert/strict";
import { filledBins, timelineSvg } from "../test/host/bench/chart";
import type { LoadResult } from "../test/host/bench/load";

const load = (bins: LoadResult["bins"]): LoadResult => ({
  startMs: bins[0].t,
  endMs: bins[bins.length - 1].t + 100,
  ok: 0,
  failed: 0,
  errors: {},
  longestGapMs: 0,
  bins,
});

test("a gap without answers is drawn as zeros, not bridged", () => {
  const filled = filledBins(
    load([
      { t: 1000, ok: 5, failed: 0 },
      { t: 1400, ok: 0, failed: 2 },
    ]),
  );
  assert.deepEqual(
    filled.map((b) => [b.t, b.ok, b.failed]),
    [
      [1000, 5, 0],
      [1100, 0, 0],
      [1200, 0, 0],
      [1300, 0, 0],
      [1400, 0, 2],
    ],
  );
});

test("the timeline renders to SVG with each panel's title and phase labels", async () => {
  const t0 = 1_000_000;
  const svg = await timelineSvg([
    {
      title: "program panel",
      t0,
      xMax: 3,
      phases: [{ t: t0 + 1000, label: "gunicorn stop" }],
      load: load([
        { t: t0, ok: 4, failed: 0 },
        { t: t0 + 2000, ok: 0, failed: 3 },
      ]),
    },
    { title: "manual panel", t0, xMax: 3, phases: [], load: load([{ t: t0, ok: 1, failed: 0 }]) },
  ]);
  assert.match(svg, /^<svg /);
  for (const text of ["program panel", "manual panel", "gunicorn stop", "answers / 100 ms", "failed"]) {
    assert.ok(svg.includes(text), `SVG shows "${text}"`);
  }
});
