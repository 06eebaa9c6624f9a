// Compare's curve smoothing: an exponential moving average that starts at the first value.
import { test } from "node:test";
import assert from "node:assert/strict";
import { smoothValues } from "../src/smooth.js";

test("no smoothing leaves the curve; smoothing keeps the level and damps the noise", () => {
  const noisy = [1, 3, 1, 3, 1, 3, 1, 3];
  assert.deepEqual(smoothValues(noisy, 0), noisy);
  const s = smoothValues(noisy, 0.9);
  assert.equal(s[0], 1, "debiased: the first point is the first value");
  const spread = (xs) => Math.max(...xs.slice(4)) - Math.min(...xs.slice(4));
  assert.ok(spread(s) < spread(noisy) / 4, s.join(", "));
  const flat = smoothValues([2, 2, 2, 2], 0.6);
  flat.forEach((v) => assert.ok(Math.abs(v - 2) < 1e-12, flat.join(", ")));
});
