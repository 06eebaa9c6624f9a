// Axis tick labels for the charts: as many digits as the tick spacing needs, so neighbouring
// ticks never read the same ("0.693, 0.693"), small values (learning rates) in scientific
// notation, and steps as whole numbers.

/** Increments the step axis may use: whole numbers only (no "2.5" steps). */
export const STEP_INCREMENTS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000,
  1e4, 2e4, 2.5e4, 5e4, 1e5, 2e5, 2.5e5, 5e5, 1e6, 2e6, 5e6, 1e7];

/**
 * Labels for ticks `splits` that are `incr` apart.
 * @param {(number | null)[]} splits (uPlot passes null for ticks it leaves unlabeled)
 * @param {number} incr
 * @returns {string[]}
 */
export function tickLabels(splits, incr) {
  const step = Math.abs(incr) || 1;
  return splits.map((v) => {
    if (v == null || !Number.isFinite(v)) return "";
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a < 0.01 || a >= 1e6) {
      // Significant digits enough for the spacing: 1.0e-5, 1.5e-5, 2.0e-5 …
      const digits = Math.max(1, Math.min(6, Math.ceil(Math.log10(a / step) - 1e-9)));
      return v.toExponential(digits);
    }
    const decimals = Math.max(0, Math.min(8, -Math.floor(Math.log10(step) + 1e-9)));
    return v.toFixed(decimals);
  });
}
