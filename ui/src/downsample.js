// Series reduction for charts, in plain JavaScript (type-checked through JSDoc) so Node's own
// test runner can check it without a build step: ui/tests/downsample.test.mjs.

/**
 * Keeps the min and max of each of `buckets` equal slices (in x order), so a curve of 100k
 * points reaches the chart as at most 2·buckets points and no spike disappears.
 * @param {number[]} x
 * @param {number[]} y
 * @param {number} buckets
 * @returns {[number[], number[]]}
 */
export function downsample(x, y, buckets) {
  const n = x.length;
  if (n <= buckets * 2) return [x, y];
  /** @type {number[]} */
  const ox = [];
  /** @type {number[]} */
  const oy = [];
  const size = n / buckets;
  for (let b = 0; b < buckets; b++) {
    const start = Math.floor(b * size);
    const end = Math.min(n, Math.floor((b + 1) * size));
    let lo = start;
    let hi = start;
    for (let i = start; i < end; i++) {
      if (y[i] < y[lo]) lo = i;
      if (y[i] > y[hi]) hi = i;
    }
    for (const i of lo < hi ? [lo, hi] : lo > hi ? [hi, lo] : [lo]) {
      ox.push(x[i]);
      oy.push(y[i]);
    }
  }
  return [ox, oy];
}
