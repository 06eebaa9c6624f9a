// The Train form's Device choices: the generic ones, then each GPU this machine reports by
// its own name (cuda:0, cuda:1 …, with its memory), so a run can be pinned to one GPU.

/**
 * @typedef {{ index: number, name: string, free: number, total: number }} Gpu
 * @typedef {{ value: string, label: string }} DeviceChoice
 */

/**
 * The choices for the device select.
 * @param {string[]} generic the option's own choices (cpu, auto, cuda, metal)
 * @param {{ gpus?: Gpu[], gpu_backend?: string | null } | null | undefined} machine `app_info`'s machine
 * @param {string | undefined} current the value the form holds (kept even when no GPU names it,
 *   e.g. a preset's or a pasted configuration's `cuda:3`)
 * @param {(n: number) => string} size how a memory size reads (the app's `bytes`)
 * @returns {DeviceChoice[]}
 */
export function deviceChoices(generic, machine, current, size) {
  /** @type {DeviceChoice[]} */
  const choices = generic.map((value) => ({ value, label: genericLabel(value) }));
  const backend = machine?.gpu_backend;
  for (const gpu of (backend && machine?.gpus) || []) {
    const value = `${backend}:${gpu.index}`;
    choices.push({ value, label: `${value} · ${gpu.name} (${size(gpu.free)} free of ${size(gpu.total)})` });
  }
  if (current && !choices.some((c) => c.value === current)) {
    choices.push({ value: current, label: `${current} (not found on this machine)` });
  }
  return choices;
}

/** @param {string} value */
function genericLabel(value) {
  switch (value) {
    case "auto": return "auto (a GPU if there is one)";
    case "cuda": return "cuda (the first NVIDIA GPU)";
    case "metal": return "metal (Apple GPU)";
    default: return value;
  }
}
