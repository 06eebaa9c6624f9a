// Chart tick labels: neighbours never read the same, steps are whole numbers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { STEP_INCREMENTS, tickLabels } from "../src/ticks.js";

test("ticks close together get the digits that tell them apart", () => {
  const splits = [0.693, 0.6935, 0.694, 0.6945];
  const labels = tickLabels(splits, 0.0005);
  assert.equal(new Set(labels).size, labels.length, labels.join(", "));
  assert.deepEqual(tickLabels([0, 0.5, 1, 1.5], 0.5), ["0", "0.5", "1.0", "1.5"]);
  assert.deepEqual(tickLabels([0, 20, 40], 20), ["0", "20", "40"]);
});

test("learning rates read in scientific notation, still distinct", () => {
  const labels = tickLabels([1e-5, 1.5e-5, 2e-5, 2.5e-5], 5e-6);
  assert.equal(new Set(labels).size, 4, labels.join(", "));
  assert.ok(labels.every((l) => l.includes("e-5")), labels.join(", "));
});

test("the step axis only steps by whole numbers", () => {
  assert.ok(STEP_INCREMENTS.every((i) => Number.isInteger(i)));
  assert.deepEqual(tickLabels([2, 4, 6], 2), ["2", "4", "6"]);
  assert.deepEqual(tickLabels([null, 4, NaN], undefined), ["", "4", ""]);
});
