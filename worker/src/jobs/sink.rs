//! A metrics sink that streams a job's metrics to its run, in batches (training and RL jobs).

use crate::client::ServerClient;
use crate::train::MetricsSink;
use crucible_types::MetricPoint;
use uuid::Uuid;

/// Points buffered before one upload.
const FLUSH_EVERY: usize = 64;

/// Sends metrics to the run as `<prefix><key>`; a failed upload is logged and the job goes on.
pub(super) struct RunSink<'a> {
    client: &'a ServerClient,
    run_id: Uuid,
    /// `train/` for pretrain/SFT (their keys are bare), empty for RL (its keys are qualified).
    prefix: &'static str,
    buffer: Vec<MetricPoint>,
}

impl<'a> RunSink<'a> {
    /// An empty sink for `run_id`.
    pub(super) fn new(client: &'a ServerClient, run_id: Uuid, prefix: &'static str) -> Self {
        Self {
            client,
            run_id,
            prefix,
            buffer: Vec::new(),
        }
    }

    /// Uploads what is buffered.
    pub(super) fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let points = std::mem::take(&mut self.buffer);
        if let Err(e) = self.client.log_metrics(self.run_id, points) {
            tracing::warn!(error = %e, "could not log metrics");
        }
    }
}

impl MetricsSink for RunSink<'_> {
    fn record(&mut self, step: u64, values: &[(&str, f64)]) {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let prefix = self.prefix;
        self.buffer
            .extend(
                values
                    .iter()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(k, v)| MetricPoint {
                        key: format!("{prefix}{k}"),
                        step,
                        value: *v,
                        timestamp: None,
                    }),
            );
        if self.buffer.len() >= FLUSH_EVERY {
            self.flush();
        }
    }
}
