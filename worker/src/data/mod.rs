//! Training data that needs no download: a seeded generator of graded reasoning problems, the
//! small tokenizer trained on it, and packing of documents into fixed-size training rows.

pub mod packing;
pub mod rng;
pub mod stream;
pub mod synthetic;
pub mod vocab;

/// Why training data could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The tokenizer could not be trained, saved or applied.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A file could not be written or read.
    #[error("cannot access {}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The caller asked for something impossible (empty batch, zero-length rows …).
    #[error("{0}")]
    Invalid(String),
}
