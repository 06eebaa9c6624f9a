// The chart reduction: 100k points become at most 2 per pixel column, fast, with the extremes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { downsample } from "../src/downsample.js";

test("100k points shrink to ≤ 2 per bucket, keep every spike, in order, in milliseconds", () => {
  const n = 100_000;
  const x = Array.from({ length: n }, (_, i) => i);
  const y = x.map((i) => Math.sin(i / 500) + ((i * 7919) % 13) / 100);
  y[31_337] = 50; // a loss spike
  y[77_777] = -50;
  const started = performance.now();
  const [ox, oy] = downsample(x, y, 1000);
  const ms = performance.now() - started;
  assert.ok(ox.length <= 2000, `${ox.length} points`);
  assert.ok(ox.length >= 1000);
  assert.ok(oy.includes(50) && oy.includes(-50), "spikes survive");
  for (let i = 1; i < ox.length; i++) assert.ok(ox[i] > ox[i - 1], "x stays increasing");
  assert.equal(Math.max(...oy), Math.max(...y));
  assert.equal(Math.min(...oy), Math.min(...y));
  assert.ok(ms < 200, `${ms.toFixed(1)} ms`);
  console.log(`downsampled 100k → ${ox.length} points in ${ms.toFixed(1)} ms`);
});

test("short series pass through untouched", () => {
  const [ox, oy] = downsample([1, 2, 3], [3, 1, 2], 1000);
  assert.deepEqual(ox, [1, 2, 3]);
  assert.deepEqual(oy, [3, 1, 2]);
});
