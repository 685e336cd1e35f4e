//! Prometheus metrics under vLLM's names (`vllm:num_requests_running`,
//! `vllm:time_to_first_token_seconds`, `vllm:spec_decode_num_accepted_tokens_total`, …), each labelled with `model_name`, so that dashboards
//! built for vLLM read this server unchanged.

use crucible_gpu::engine::serving::EngineLoad;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of an OpenMetrics text page.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FinishedLabels {
    model_name: String,
    finished_reason: &'static str,
}

/// Latency buckets from 1 ms to about 2 minutes.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 18))
}

/// The server's metrics.
pub struct ServeMetrics {
    registry: Registry,
    model: ModelLabels,
    running: Family<ModelLabels, Gauge>,
    waiting: Family<ModelLabels, Gauge>,
    prompt_tokens: Family<ModelLabels, Counter>,
    generation_tokens: Family<ModelLabels, Counter>,
    ttft: Family<ModelLabels, Histogram>,
    itl: Family<ModelLabels, Histogram>,
    e2e: Family<ModelLabels, Histogram>,
    success: Family<FinishedLabels, Counter>,
    drafts: Family<ModelLabels, Counter>,
    draft_tokens: Family<ModelLabels, Counter>,
    accepted_tokens: Family<ModelLabels, Counter>,
}

impl ServeMetrics {
    /// Metrics of the model served as `model_name`.
    pub fn new(model_name: &str) -> Self {
        let mut registry = Registry::default();
        let running = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "vllm:num_requests_running",
            "Sequences in the decoding batch",
            running.clone(),
        );
        let waiting = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "vllm:num_requests_waiting",
            "Sequences waiting for a row of the batch",
            waiting.clone(),
        );
        let prompt_tokens = Family::<ModelLabels, Counter>::default();
        registry.register(
            "vllm:prompt_tokens",
            "Prompt tokens prefilled",
            prompt_tokens.clone(),
        );
        let generation_tokens = Family::<ModelLabels, Counter>::default();
        registry.register(
            "vllm:generation_tokens",
            "Tokens generated",
            generation_tokens.clone(),
        );
        let histogram = || Family::<ModelLabels, Histogram>::new_with_constructor(latency);
        let (ttft, itl, e2e) = (histogram(), histogram(), histogram());
        registry.register_with_unit(
            "vllm:time_to_first_token",
            "From a request's arrival to its first token",
            Unit::Seconds,
            ttft.clone(),
        );
        registry.register_with_unit(
            "vllm:inter_token_latency",
            "Between consecutive tokens of a sequence",
            Unit::Seconds,
            itl.clone(),
        );
        registry.register_with_unit(
            "vllm:e2e_request_latency",
            "From a request's arrival to its last token",
            Unit::Seconds,
            e2e.clone(),
        );
        let success = Family::<FinishedLabels, Counter>::default();
        registry.register(
            "vllm:request_success",
            "Sequences finished, by why they stopped",
            success.clone(),
        );
        let drafts = Family::<ModelLabels, Counter>::default();
        registry.register(
            "vllm:spec_decode_num_drafts",
            "Row-steps that drafted with the MTP layers",
            drafts.clone(),
        );
        let draft_tokens = Family::<ModelLabels, Counter>::default();
        registry.register(
            "vllm:spec_decode_num_draft_tokens",
            "Draft tokens proposed",
            draft_tokens.clone(),
        );
        let accepted_tokens = Family::<ModelLabels, Counter>::default();
        registry.register(
            "vllm:spec_decode_num_accepted_tokens",
            "Draft tokens the main model accepted",
            accepted_tokens.clone(),
        );
        Self {
            registry,
            model: ModelLabels {
                model_name: model_name.to_string(),
            },
            running,
            waiting,
            prompt_tokens,
            generation_tokens,
            ttft,
            itl,
            e2e,
            success,
            drafts,
            draft_tokens,
            accepted_tokens,
        }
    }

    pub(crate) fn prompt_tokens(&self, n: usize) {
        self.prompt_tokens
            .get_or_create(&self.model)
            .inc_by(n as u64);
    }

    pub(crate) fn token(&self, since_previous: Option<f64>, since_arrival: f64) {
        self.generation_tokens.get_or_create(&self.model).inc();
        match since_previous {
            Some(gap) => self.itl.get_or_create(&self.model).observe(gap),
            None => self.ttft.get_or_create(&self.model).observe(since_arrival),
        }
    }

    pub(crate) fn finished(&self, reason: &'static str, since_arrival: f64) {
        self.e2e.get_or_create(&self.model).observe(since_arrival);
        self.success
            .get_or_create(&FinishedLabels {
                model_name: self.model.model_name.clone(),
                finished_reason: reason,
            })
            .inc();
    }

    /// The OpenMetrics page, with the engine's current load and drafting counts.
    pub fn encode(&self, load: &EngineLoad) -> Result<String, std::fmt::Error> {
        self.running
            .get_or_create(&self.model)
            .set(load.running() as i64);
        self.waiting
            .get_or_create(&self.model)
            .set(load.waiting() as i64);
        let (drafts, draft_tokens, accepted) = load.drafting();
        for (counter, total) in [
            (&self.drafts, drafts),
            (&self.draft_tokens, draft_tokens),
            (&self.accepted_tokens, accepted),
        ] {
            // The engine keeps the totals; the counter catches up to them.
            let counter = counter.get_or_create(&self.model);
            counter.inc_by((total as u64).saturating_sub(counter.get()));
        }
        let mut page = String::new();
        prometheus_client::encoding::text::encode(&mut page, &self.registry)?;
        Ok(page)
    }
}
