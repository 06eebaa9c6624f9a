// The Train form's device choices name each GPU the machine reports.
import { test } from "node:test";
import assert from "node:assert/strict";
import { deviceChoices } from "../src/devices.js";

const generic = ["cpu", "auto", "cuda", "metal"];
const gib = (n) => `${(n / 2 ** 30).toFixed(1)} GiB`;

test("each GPU becomes a choice of its own, with its name and memory", () => {
  const machine = {
    gpu_backend: "cuda",
    gpus: [
      { index: 0, name: "NVIDIA H200", free: 140 * 2 ** 30, total: 143 * 2 ** 30 },
      { index: 1, name: "NVIDIA L4", free: 20 * 2 ** 30, total: 22.5 * 2 ** 30 },
    ],
  };
  const choices = deviceChoices(generic, machine, "cpu", gib);
  assert.deepEqual(choices.map((c) => c.value), ["cpu", "auto", "cuda", "metal", "cuda:0", "cuda:1"]);
  assert.equal(choices[5].label, "cuda:1 · NVIDIA L4 (20.0 GiB free of 22.5 GiB)");
});

test("a machine without GPUs keeps the generic choices", () => {
  assert.deepEqual(deviceChoices(generic, { gpus: [], gpu_backend: null }, "auto", gib).map((c) => c.value), generic);
  assert.deepEqual(deviceChoices(generic, null, undefined, gib).map((c) => c.value), generic);
});

test("a device the form holds but the machine lacks stays selectable and says so", () => {
  const choices = deviceChoices(generic, null, "cuda:3", gib);
  assert.equal(choices.at(-1).value, "cuda:3");
  assert.match(choices.at(-1).label, /not found/);
});
