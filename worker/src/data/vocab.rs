//! The small model's tokenizer: byte-level BPE trained with the `tokenizers` crate on the
//! synthetic corpus, digits always split one per token (so arithmetic sees every digit), plus the
//! ChatML-style special tokens and chat template written to `tokenizer_config.json`.

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use super::DataError;
use super::synthetic::{Difficulty, Split, problem};

/// Separates pretraining documents and pads packed rows.
pub const END_OF_TEXT: &str = "<|endoftext|>";
/// Opens a chat turn.
pub const IM_START: &str = "<|im_start|>";
/// Ends a chat turn; the chat model's end-of-sequence token.
pub const IM_END: &str = "<|im_end|>";

/// ChatML without a default system prompt (MiMo's README recommends an empty one).
pub const CHAT_TEMPLATE: &str = "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/// Trains a byte-level BPE tokenizer of (at most) `vocab_size` entries on `corpus`.
pub fn train_tokenizer(
    corpus: impl Iterator<Item = String> + Send,
    vocab_size: usize,
) -> Result<Tokenizer, DataError> {
    let err = |e: tokenizers::Error| DataError::Tokenizer(e.to_string());
    let specials: Vec<AddedToken> = [END_OF_TEXT, IM_START, IM_END]
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    let mut trainer = TrainerWrapper::BpeTrainer(
        BpeTrainer::builder()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(specials)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build(),
    );
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    tokenizer.train(&mut trainer, corpus).map_err(err)?;
    Ok(tokenizer)
}

/// Trains the small model's tokenizer on `documents` synthetic training problems of every
/// difficulty (pretraining and chat wording), keyed by `seed`.
pub fn train_synthetic_tokenizer(
    seed: u64,
    documents: u64,
    vocab_size: usize,
) -> Result<Tokenizer, DataError> {
    let levels = Difficulty::LEVELS;
    let corpus = (0..documents).map(move |i| {
        let d = levels[(i % levels.len() as u64) as usize];
        let p = problem(seed, Split::Train, i, d);
        // The chat roles appear as plain words so that they become single tokens.
        format!(
            "Problem: {}\nSolution: {}\nuser\nassistant\n",
            p.text, p.solution
        )
    });
    train_tokenizer(corpus, vocab_size)
}

/// Writes `tokenizer.json` and a `tokenizer_config.json` holding the chat template to `dir`.
pub fn write_tokenizer_files(tokenizer: &Tokenizer, dir: &Path) -> Result<(), DataError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    tokenizer
        .save(dir.join("tokenizer.json"), false)
        .map_err(|e| DataError::Tokenizer(e.to_string()))?;
    let config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": null,
        "eos_token": IM_END,
        "pad_token": END_OF_TEXT,
        "chat_template": CHAT_TEMPLATE,
    });
    let path = dir.join("tokenizer_config.json");
    let text = serde_json::to_string_pretty(&config).expect("a JSON value always serialises");
    std::fs::write(&path, text).map_err(io(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trained_tokenizer_splits_digits_and_round_trips() {
        let corpus = (0..200).map(|i| format!("Ana has {i} coins. 12 + {i} = {}.", 12 + i));
        let tok = train_tokenizer(corpus, 300).unwrap();
        assert!(tok.get_vocab_size(true) <= 300);
        let text = "Ana has 1234 coins.\n<|im_end|>";
        let enc = tok.encode(text, false).unwrap();
        let pieces = enc.get_tokens();
        assert!(pieces.contains(&"1".to_string()) && pieces.contains(&"4".to_string()));
        assert!(pieces.contains(&IM_END.to_string()));
        assert_eq!(tok.decode(enc.get_ids(), false).unwrap(), text);
    }
}
