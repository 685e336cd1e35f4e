//! Where training metrics go. The library only knows this trait; the CLI and the worker plug in
//! a sink that posts to the tracking API, tests use [`NoopSink`] or [`MemorySink`].

/// Receives the metrics of each optimizer step (`loss`, `mtp_loss`, `lr`, `grad_norm`,
/// `tokens_per_sec` …). Sinks must not fail the run: one that cannot deliver logs and moves on.
pub trait MetricsSink {
    /// Records the values of `step`.
    fn record(&mut self, step: u64, values: &[(&str, f64)]);
}

/// Discards everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopSink;

impl MetricsSink for NoopSink {
    fn record(&mut self, _step: u64, _values: &[(&str, f64)]) {}
}

/// Prints one `step key=value …` line per step to stdout.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutSink;

impl MetricsSink for StdoutSink {
    fn record(&mut self, step: u64, values: &[(&str, f64)]) {
        let fields: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v:.6}")).collect();
        println!("step {step} {}", fields.join(" "));
    }
}

/// Keeps every point in memory (tests, summaries).
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    pub points: Vec<(u64, String, f64)>,
}

impl MemorySink {
    /// The values recorded under `key`, in step order.
    pub fn series(&self, key: &str) -> Vec<f64> {
        self.points
            .iter()
            .filter(|(_, k, _)| k == key)
            .map(|(_, _, v)| *v)
            .collect()
    }
}

impl MetricsSink for MemorySink {
    fn record(&mut self, step: u64, values: &[(&str, f64)]) {
        self.points
            .extend(values.iter().map(|(k, v)| (step, k.to_string(), *v)));
    }
}
