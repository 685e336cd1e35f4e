//! Generation engine: batching and continuous batching, sampling, the decode loop, speculative
//! decoding with the MTP layers, streaming text, and the serving engine behind the OpenAI API.

pub mod detokenizer;
pub mod generate;
pub mod sampler;
pub mod serving;
pub mod speculative;

pub use generate::{
    GenerateError, GeneratedSequence, GenerationObserver, GenerationRequest, generate,
    generate_continuous, generate_observed,
};
pub use speculative::{SpeculativeMetrics, SpeculativeOutput, generate_speculative};
