//! Generation engine: batching and continuous batching, sampling, the decode loop and streaming text.

pub mod detokenizer;
pub mod generate;
pub mod sampler;

pub use generate::{
    GenerateError, GeneratedSequence, GenerationObserver, GenerationRequest, generate,
    generate_continuous, generate_observed,
};
