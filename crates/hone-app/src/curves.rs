//! A run's stored curves thinned for drawing: a long run records tens of thousands of steps
//! per metric, far more than a chart is wide. Sending them all to the window every few
//! seconds made it slow while such a run trained; the front ends draw this instead.

use std::collections::BTreeMap;

use hone_store::MetricRow;

/// At most about `2 × buckets + 2` rows per metric name: in each of `buckets` equal runs of
/// steps the lowest and the highest value (spikes stay visible), and always the first and
/// the last row. Rows come back per name in step order.
pub fn thin(rows: Vec<MetricRow>, buckets: usize) -> Vec<MetricRow> {
    let mut by_name: BTreeMap<String, Vec<MetricRow>> = BTreeMap::new();
    for row in rows {
        by_name.entry(row.name.clone()).or_default().push(row);
    }
    let mut out = Vec::new();
    for (_, mut series) in by_name {
        series.sort_by_key(|r| r.step);
        out.extend(thin_series(series, buckets.max(1)));
    }
    out
}

fn thin_series(series: Vec<MetricRow>, buckets: usize) -> Vec<MetricRow> {
    if series.len() <= 2 * buckets + 2 {
        return series;
    }
    let n = series.len();
    let mut keep = vec![false; n];
    keep[0] = true;
    keep[n - 1] = true;
    for b in 0..buckets {
        let (from, to) = (
            b * n / buckets,
            ((b + 1) * n / buckets).max(b * n / buckets + 1),
        );
        let slice = &series[from..to.min(n)];
        let low = (0..slice.len()).min_by(|&i, &j| slice[i].value.total_cmp(&slice[j].value));
        let high = (0..slice.len()).max_by(|&i, &j| slice[i].value.total_cmp(&slice[j].value));
        for i in low.into_iter().chain(high) {
            keep[from + i] = true;
        }
    }
    series
        .into_iter()
        .zip(keep)
        .filter_map(|(row, k)| k.then_some(row))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, step: i64, value: f64) -> MetricRow {
        MetricRow {
            step,
            epoch: None,
            name: name.into(),
            value,
            recorded_at: String::new(),
        }
    }

    #[test]
    fn a_long_curve_keeps_its_ends_and_its_spikes_and_a_short_one_is_untouched() {
        let mut rows: Vec<MetricRow> = (1..=30_000)
            .map(|s| row("loss", s, 1.0 / s as f64))
            .collect();
        rows[12_345].value = 50.0; // a spike
        rows.extend((1..=10).map(|s| row("eval_accuracy", s * 100, 0.5)));
        let thinned = thin(rows, 500);
        let loss: Vec<&MetricRow> = thinned.iter().filter(|r| r.name == "loss").collect();
        assert!(loss.len() <= 1002, "{}", loss.len());
        assert_eq!(loss.first().map(|r| r.step), Some(1));
        assert_eq!(loss.last().map(|r| r.step), Some(30_000));
        assert!(loss.iter().any(|r| r.value == 50.0), "the spike stays");
        assert!(
            loss.windows(2).all(|w| w[0].step < w[1].step),
            "in step order"
        );
        assert_eq!(
            thinned.iter().filter(|r| r.name == "eval_accuracy").count(),
            10
        );
    }
}
