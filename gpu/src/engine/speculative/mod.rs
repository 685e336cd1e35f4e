//! Speculative decoding with the checkpoint's own MTP layers as the draft model: the MTP layer
//! proposes the next token from the main model's hidden state, the main model checks it and the
//! token after it in one forward pass, and the KV caches keep exactly the accepted tokens. Split
//! the mistral.rs way: [`proposer`] drafts, [`verifier`] decides, [`driver`] runs the batch, and
//! [`backoff`] turns drafting off where it would cost more than it saves.

mod backoff;
mod driver;
mod metrics;
pub(in crate::engine) mod proposer;
pub(in crate::engine) mod step;
pub mod verifier;

pub use backoff::MAX_DRAFT_BATCH;
pub(in crate::engine) use driver::check_drafting;
pub use driver::{SpeculativeOutput, generate_speculative};
pub use metrics::SpeculativeMetrics;
