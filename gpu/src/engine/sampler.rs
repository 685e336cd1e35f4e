//! Picks the next token from logits according to [`SamplingParams`], with the request's own
//! seeded RNG, and reports the chosen token's log-probability (RL needs it for importance ratios).

use crucible_types::sampling::SamplingParams;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A chosen token and its log-probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampled {
    pub token: u32,
    /// `log softmax(logits / T)[token]` over the full vocabulary (T = 1 for greedy), i.e. the
    /// policy's log-probability before truncation by top-k/top-p/min-p.
    pub logprob: f32,
}

/// Sampling state of one request.
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    /// A sampler whose RNG is seeded from `params.seed`, so equal seeds give equal outputs.
    pub fn new(params: SamplingParams) -> Self {
        let rng = StdRng::seed_from_u64(params.seed);
        Self { params, rng }
    }

    /// Whether this request decodes greedily (temperature 0): it then draws no random numbers.
    pub fn is_greedy(&self) -> bool {
        self.params.temperature == 0.0
    }

    /// Chooses the next token from `logits` (one row over the vocabulary).
    pub fn sample(&mut self, logits: &[f32]) -> Sampled {
        if self.is_greedy() {
            let token = argmax(logits) as u32;
            return Sampled {
                token,
                logprob: self.logprob(logits, token),
            };
        }
        let kept = self.candidates(logits);
        let mut r = self.rng.random::<f32>() * kept.total;
        let mut chosen = kept.order[kept.order.len() - 1];
        for (&i, &p) in kept.order.iter().zip(&kept.probs) {
            if r < p {
                chosen = i;
                break;
            }
            r -= p;
        }
        Sampled {
            token: chosen as u32,
            logprob: self.logprob(logits, chosen as u32),
        }
    }

    /// The distribution [`Self::sample`] draws from, dense over the vocabulary and normalised
    /// (one-hot at the argmax when greedy): speculative sampling compares the target's and the
    /// draft's distributions token by token.
    pub fn probabilities(&self, logits: &[f32]) -> Vec<f32> {
        let mut dense = vec![0.0; logits.len()];
        if self.is_greedy() {
            dense[argmax(logits)] = 1.0;
            return dense;
        }
        let kept = self.candidates(logits);
        for (&i, &p) in kept.order.iter().zip(&kept.probs) {
            dense[i] = p / kept.total;
        }
        dense
    }

    /// `log softmax(logits / T)[token]` over the full vocabulary (T = 1 when greedy): the
    /// log-probability reported with every generated token, however it was chosen.
    pub fn logprob(&self, logits: &[f32], token: u32) -> f32 {
        let scale = if self.is_greedy() {
            1.0
        } else {
            1.0 / self.params.temperature
        };
        logits[token as usize] * scale - log_sum_exp(logits, scale)
    }

    /// Draws a token from a normalised dense distribution with this request's RNG.
    pub(crate) fn draw(&mut self, probs: &[f32]) -> u32 {
        draw(probs, self.rng.random::<f32>())
    }

    /// A uniform number in `[0, 1)` from this request's RNG (the acceptance test of a draft).
    pub(crate) fn uniform(&mut self) -> f32 {
        self.rng.random::<f32>()
    }

    /// Tokens that survive top-k, top-p and min-p, most likely first, with their
    /// (unnormalised over the survivors) probabilities under temperature.
    fn candidates(&self, logits: &[f32]) -> Candidates {
        let inv_t = 1.0 / self.params.temperature;
        let lse = log_sum_exp(logits, inv_t);
        let mut order: Vec<usize> = (0..logits.len()).collect();
        let top_k = self.params.top_k as usize;
        if top_k > 0 && top_k < order.len() {
            order.select_nth_unstable_by(top_k - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
            order.truncate(top_k);
        }
        order.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));

        let mut probs: Vec<f32> = order
            .iter()
            .map(|&i| (logits[i] * inv_t - lse).exp())
            .collect();
        let mut keep = probs.len();
        if self.params.top_p < 1.0 {
            let mut cumulative = 0.0;
            for (n, p) in probs.iter().enumerate() {
                cumulative += p;
                if cumulative >= self.params.top_p {
                    keep = n + 1;
                    break;
                }
            }
        }
        if self.params.min_p > 0.0 {
            let floor = self.params.min_p * probs[0];
            keep = keep.min(probs.iter().take_while(|&&p| p >= floor).count().max(1));
        }
        order.truncate(keep);
        probs.truncate(keep);
        let total = probs.iter().sum();
        Candidates {
            order,
            probs,
            total,
        }
    }
}

/// The tokens a sampled request may pick and their weights.
struct Candidates {
    order: Vec<usize>,
    probs: Vec<f32>,
    total: f32,
}

/// The token whose cumulative probability first exceeds `u` (the last positive one when
/// rounding leaves `u` beyond the total).
pub(crate) fn draw(probs: &[f32], u: f32) -> u32 {
    let mut r = u * probs.iter().sum::<f32>();
    let mut chosen = probs.iter().rposition(|&p| p > 0.0).unwrap_or(0);
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 && r < p {
            chosen = i;
            break;
        }
        r -= p;
    }
    chosen as u32
}

/// Index of the largest logit (the first one on ties, as `torch.argmax`).
fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best
}

/// `log Σ exp(scale · x)`, computed stably.
pub(crate) fn log_sum_exp(logits: &[f32], scale: f32) -> f32 {
    let max = logits
        .iter()
        .fold(f32::NEG_INFINITY, |m, &l| m.max(l * scale));
    let sum: f32 = logits.iter().map(|&l| (l * scale - max).exp()).sum();
    max + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32) -> SamplingParams {
        SamplingParams {
            temperature,
            ..SamplingParams::default()
        }
    }

    #[test]
    fn greedy_picks_the_max_with_its_logprob() {
        let s = Sampler::new(params(0.0)).sample(&[0.0, 2.0, 1.0]);
        assert_eq!(s.token, 1);
        let expected = 2.0 - (1f32 + 2f32.exp() + 1f32.exp()).ln();
        assert!((s.logprob - expected).abs() < 1e-6);
    }

    #[test]
    fn filters_restrict_the_candidates() {
        let logits = [3.0, 2.9, 0.0, -1.0, -5.0];
        let mut top_k = Sampler::new(SamplingParams {
            top_k: 2,
            ..params(1.0)
        });
        let mut top_p = Sampler::new(SamplingParams {
            top_p: 0.5,
            ..params(1.0)
        });
        let mut min_p = Sampler::new(SamplingParams {
            min_p: 0.5,
            ..params(1.0)
        });
        for _ in 0..200 {
            assert!(top_k.sample(&logits).token < 2);
            assert_eq!(top_p.sample(&logits).token, 0);
            assert!(min_p.sample(&logits).token < 2);
        }
    }

    #[test]
    fn same_seed_same_tokens_and_frequencies_follow_probabilities() {
        let logits = [0.0f32, (3f32).ln()]; // p = 0.25, 0.75
        let draw = |seed| {
            let mut s = Sampler::new(SamplingParams {
                seed,
                ..params(1.0)
            });
            (0..4000)
                .map(|_| s.sample(&logits).token)
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
        let ones = draw(5).iter().filter(|&&t| t == 1).count() as f32 / 4000.0;
        assert!((ones - 0.75).abs() < 0.03, "{ones}");
    }
}
