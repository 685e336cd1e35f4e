//! An endless, resumable stream of tokenised synthetic training documents, in the pretraining
//! format (plain text) or the SFT format (chat turns, loss on the response only).
//!
//! The stream's whole state is a [`StreamCursor`]: the random generator's state and the number of
//! documents drawn. A checkpoint stores the cursor of the first document not yet trained on, so
//! a resumed run sees exactly the documents the uninterrupted run would have seen.

use serde::{Deserialize, Serialize};

use super::DataError;
use super::packing::{Document, PackedBatch, pack};
use super::rng::SplitMix64;
use super::synthetic::{Difficulty, Split, problem};
use super::vocab::{END_OF_TEXT, IM_END};
use crucible_gpu::tokenizer::{ChatMessage, Tokenizer};
use crucible_types::train::TrainKind;

/// How documents are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentFormat {
    /// `Problem: …\nSolution: …<|endoftext|>`, every token a target.
    Pretrain,
    /// The chat template over a user turn (the problem) and an assistant turn (the solution);
    /// only the assistant's tokens and its `<|im_end|>` are targets.
    Sft,
}

impl From<TrainKind> for DocumentFormat {
    /// How a training phase renders its documents.
    fn from(kind: TrainKind) -> Self {
        match kind {
            TrainKind::Pretrain => DocumentFormat::Pretrain,
            TrainKind::Sft => DocumentFormat::Sft,
        }
    }
}

/// Where a stream stands; enough to continue it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCursor {
    pub rng_state: u64,
    pub documents: u64,
}

/// Synthetic training documents (training split only), drawn over a grid of difficulties.
pub struct DocumentStream {
    tokenizer: Tokenizer,
    format: DocumentFormat,
    seed: u64,
    max_steps: u8,
    max_digits: u8,
    cursor: StreamCursor,
    /// Ends pretraining documents and pads packed rows.
    end_of_text: u32,
}

impl DocumentStream {
    /// A stream keyed by `seed`, with steps in `1..=max_steps` and digits in `1..=max_digits`.
    pub fn new(
        tokenizer: Tokenizer,
        format: DocumentFormat,
        seed: u64,
        max_steps: u8,
        max_digits: u8,
    ) -> Result<Self, DataError> {
        let end_of_text = tokenizer.token_to_id(END_OF_TEXT).ok_or_else(|| {
            DataError::Tokenizer(format!("the tokenizer has no {END_OF_TEXT} token"))
        })?;
        if max_steps == 0 || max_digits == 0 {
            return Err(DataError::Invalid(
                "max_steps and max_digits must be at least 1".into(),
            ));
        }
        Ok(Self {
            tokenizer,
            format,
            seed,
            max_steps,
            max_digits,
            cursor: StreamCursor {
                rng_state: seed,
                documents: 0,
            },
            end_of_text,
        })
    }

    /// The tokenizer documents are encoded with.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The position of the next document.
    pub fn cursor(&self) -> StreamCursor {
        self.cursor
    }

    /// Continues from a saved cursor.
    pub fn seek(&mut self, cursor: StreamCursor) {
        self.cursor = cursor;
    }

    /// The next document.
    pub fn next_document(&mut self) -> Result<Document, DataError> {
        let mut rng = SplitMix64::new(self.cursor.rng_state);
        let d = Difficulty {
            steps: rng.range(1, u64::from(self.max_steps)) as u8,
            digits: rng.range(1, u64::from(self.max_digits)) as u8,
        };
        let p = problem(self.seed, Split::Train, rng.next_u64(), d);
        self.cursor = StreamCursor {
            rng_state: rng.state(),
            documents: self.cursor.documents + 1,
        };
        let codec =
            |e: crucible_gpu::tokenizer::TokenizerError| DataError::Tokenizer(e.to_string());
        match self.format {
            DocumentFormat::Pretrain => {
                let text = format!("Problem: {}\nSolution: {}", p.text, p.solution);
                let mut tokens = self.tokenizer.encode(&text, false).map_err(codec)?;
                tokens.push(self.end_of_text);
                Ok(Document {
                    targets: vec![true; tokens.len()],
                    tokens,
                })
            }
            DocumentFormat::Sft => {
                let prompt = self
                    .tokenizer
                    .apply_chat_template(&[ChatMessage::user(p.text)], true)
                    .map_err(codec)?;
                let mut tokens = self.tokenizer.encode(&prompt, false).map_err(codec)?;
                let response = self
                    .tokenizer
                    .encode(&format!("{}{IM_END}", p.solution), false)
                    .map_err(codec)?;
                let mut targets = vec![false; tokens.len()];
                targets.resize(tokens.len() + response.len(), true);
                tokens.extend(response);
                Ok(Document { tokens, targets })
            }
        }
    }

    /// The next `(rows, len)` block. A document that did not fit is given back to the stream,
    /// so the cursor afterwards points at the first document not in the block.
    pub fn next_batch(&mut self, rows: usize, len: usize) -> Result<PackedBatch, DataError> {
        if rows == 0 || len < 2 {
            return Err(DataError::Invalid(format!(
                "cannot pack {rows} rows of {len} tokens"
            )));
        }
        let mut before_last = self.cursor;
        let mut peeked = None;
        let batch = pack(rows, len, self.end_of_text, &mut peeked, || {
            before_last = self.cursor;
            self.next_document()
        })?;
        if peeked.is_some() {
            self.cursor = before_last;
        }
        Ok(batch)
    }
}
