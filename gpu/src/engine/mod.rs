//! Generation engine: batching and continuous batching, sampling, the decode loop, speculative
//! decoding with the MTP layers, and streaming text.

pub mod detokenizer;
pub mod generate;
pub mod sampler;
pub mod speculative;

pub use generate::{
    GenerateError, GeneratedSequence, GenerationObserver, GenerationRequest, generate,
    generate_continuous, generate_observed,
};
pub use speculative::{SpeculativeMetrics, SpeculativeOutput, generate_speculative};
