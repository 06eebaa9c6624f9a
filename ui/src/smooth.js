// Curve smoothing for the Compare view: an exponential moving average, as TensorBoard's
// smoothing slider, debiased so the curve does not start near 0.

/**
 * The values smoothed with `weight` (0 leaves them as they are, 0.99 smooths hard).
 * @param {number[]} values
 * @param {number} weight
 * @returns {number[]}
 */
export function smoothValues(values, weight) {
  if (!(weight > 0)) return values;
  let last = 0;
  return values.map((v, i) => {
    last = last * weight + (1 - weight) * v;
    return last / (1 - Math.pow(weight, i + 1));
  });
}
