//! Streaming detokenisation: turns one token at a time into text without ever emitting half of a
//! UTF-8 character, and holds back text that might be the start of a stop string.
//!
//! Byte-level BPE tokens can end in the middle of a multi-byte character, and decoding a lone
//! token can differ from decoding it in context (leading spaces, merges), so each step decodes a
//! short window of recent tokens and emits only what that window adds, once it no longer ends in
//! an incomplete character (U+FFFD).

use crate::tokenizer::{Tokenizer, TokenizerError};

/// Incremental decoder for one sequence.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    /// Start of the decoding window (tokens before it are already fully emitted).
    prefix_offset: usize,
    /// End of the part of the window whose text has been emitted.
    read_offset: usize,
}

impl StreamDecoder {
    /// Adds `id` and returns the newly completed text (possibly empty).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<String, TokenizerError> {
        self.ids.push(id);
        let before = tok.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let now = tok.decode(&self.ids[self.prefix_offset..])?;
        if now.ends_with('\u{FFFD}')
            || now.len() < before.len()
            || !now.is_char_boundary(before.len())
        {
            return Ok(String::new());
        }
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        Ok(now[before.len()..].to_string())
    }

    /// Whatever is still held (an incomplete character at the very end decodes as U+FFFD).
    pub fn finish(&mut self, tok: &Tokenizer) -> Result<String, TokenizerError> {
        let before = tok.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let now = tok.decode(&self.ids[self.prefix_offset..])?;
        self.prefix_offset = self.ids.len();
        self.read_offset = self.ids.len();
        Ok(now.get(before.len()..).unwrap_or_default().to_string())
    }
}

/// Releases text only once it cannot be part of a stop string, and finds the first stop string.
#[derive(Debug, Default)]
pub struct StopStringFilter {
    stops: Vec<String>,
    pending: String,
    stopped: bool,
}

impl StopStringFilter {
    /// A filter for the given (non-empty) stop strings.
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops,
            ..Self::default()
        }
    }

    /// Whether a stop string has been seen (no more text will be released).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Adds `piece` and returns the text that is now safe to release.
    ///
    /// Held text is always the longest tail that is a prefix of some stop string, so any stop
    /// string that completes later must start inside the held text: searching it suffices.
    pub fn push(&mut self, piece: &str) -> String {
        if self.stopped {
            return String::new();
        }
        self.pending.push_str(piece);
        let first_stop = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = first_stop {
            self.stopped = true;
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return out;
        }
        let hold = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.pending, s))
            .max()
            .unwrap_or(0);
        let cut = self.pending.len() - hold;
        let out = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        out
    }

    /// Releases the held text at the end of generation (no stop string completed).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

/// Length in bytes of the longest suffix of `text` that is a proper prefix of `stop`.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    (1..stop.len().min(text.len() + 1))
        .rev()
        .find(|&n| stop.is_char_boundary(n) && text.ends_with(&stop[..n]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut f = StopStringFilter::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            out.push_str(&f.push(p));
        }
        if !f.stopped() {
            out.push_str(&f.finish());
        }
        (out, f.stopped())
    }

    #[test]
    fn stop_string_split_across_pieces() {
        assert_eq!(
            run(&["</answer>"], &["42 </an", "swer> more"]),
            ("42 ".into(), true)
        );
        assert_eq!(run(&["STOP"], &["ST", "ART"]), ("START".into(), false));
        assert_eq!(run(&["ab", "b"], &["xab"]), ("x".into(), true));
        assert_eq!(run(&["é!"], &["caf", "é", "!"]), ("caf".into(), true));
    }

    #[test]
    fn held_text_is_only_a_stop_prefix() {
        let mut f = StopStringFilter::new(vec!["\n\n".into()]);
        assert_eq!(f.push("line\n"), "line");
        assert_eq!(f.push("next"), "\nnext");
    }
}
