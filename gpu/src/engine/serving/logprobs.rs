//! Log-probabilities as OpenAI-compatible servers report them: the raw model distribution
//! (log-softmax of the logits, before temperature or any filter), as vLLM does by default, so
//! that lm-evaluation-harness scores a continuation by the model's own likelihood.

use crate::engine::sampler::log_sum_exp;

/// Most alternatives a request may ask for per position (vLLM's default `max_logprobs`).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// One position's token with its log-probability and the most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    /// The `top` most likely tokens at this position, most likely first (ties by id).
    pub top: Vec<(u32, f32)>,
}

impl TokenLogprob {
    /// `token`'s log-probability under `logits` and the `top` most likely tokens.
    pub fn of(logits: &[f32], token: u32, top: usize) -> Self {
        let lse = log_sum_exp(logits, 1.0);
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let top = top.min(order.len());
        let by_logit = |a: &u32, b: &u32| {
            logits[*b as usize]
                .total_cmp(&logits[*a as usize])
                .then(a.cmp(b))
        };
        if top > 0 && top < order.len() {
            order.select_nth_unstable_by(top - 1, by_logit);
        }
        order.truncate(top);
        order.sort_unstable_by(by_logit);
        TokenLogprob {
            token,
            logprob: logits[token as usize] - lse,
            top: order
                .into_iter()
                .map(|t| (t, logits[t as usize] - lse))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprobs_are_the_raw_log_softmax_with_sorted_alternatives() {
        let logits = [1.0f32, 3.0, 2.0, 3.0];
        let lp = TokenLogprob::of(&logits, 2, 3);
        let lse = logits.iter().map(|l| l.exp()).sum::<f32>().ln();
        assert!((lp.logprob - (2.0 - lse)).abs() < 1e-6);
        let ids: Vec<u32> = lp.top.iter().map(|&(t, _)| t).collect();
        assert_eq!(
            ids,
            vec![1, 3, 2],
            "ties go to the lower id, then by probability"
        );
        let total: f32 = (0..4)
            .map(|t| TokenLogprob::of(&logits, t, 0).logprob.exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
