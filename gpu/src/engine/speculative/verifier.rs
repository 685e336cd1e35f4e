//! The accept/resample rule of speculative sampling (Leviathan et al., arXiv 2211.17192) as a
//! pure function over explicit distributions, so its losslessness is testable without a model.

use crate::engine::sampler::draw;

/// What verification decided for one draft token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The draft token stands; the next draft (or the bonus token) is checked next.
    Accepted,
    /// The draft is refused and `replacement` is emitted in its place; later drafts are dropped.
    Rejected {
        /// The token emitted instead, distributed so that the output follows the target.
        replacement: u32,
    },
}

/// Greedy verification: a draft stands only if it is the target's own argmax, which keeps the
/// output identical to plain greedy decoding.
pub fn verify_greedy(target_argmax: u32, draft: u32) -> Verdict {
    if draft == target_argmax {
        Verdict::Accepted
    } else {
        Verdict::Rejected {
            replacement: target_argmax,
        }
    }
}

/// Speculative sampling: `draft` was sampled from `draft_probs` (q); accept it with probability
/// min(1, p/q) under `target` (p), otherwise emit a token drawn from normalise(max(0, p − q)).
/// The emitted token is then distributed exactly as p. `uniform` yields numbers in [0, 1): one
/// for the test and, on rejection, one for the resample. A draft p gives zero probability is
/// never accepted.
pub fn verify_sampled(
    target: &[f32],
    draft_probs: &[f32],
    draft: u32,
    mut uniform: impl FnMut() -> f32,
) -> Verdict {
    let (p, q) = (target[draft as usize], draft_probs[draft as usize]);
    if uniform() * q < p {
        return Verdict::Accepted;
    }
    let residual: Vec<f32> = target
        .iter()
        .zip(draft_probs)
        .map(|(&p, &q)| (p - q).max(0.0))
        .collect();
    // Rounding can leave no residual mass only where p ≈ q, where rejection is (almost) impossible.
    let from = if residual.iter().any(|&r| r > 0.0) {
        &residual
    } else {
        target
    };
    Verdict::Rejected {
        replacement: draw(from, uniform()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random_distribution(rng: &mut StdRng, n: usize, zeros: &[usize]) -> Vec<f32> {
        let mut p: Vec<f32> = (0..n).map(|_| rng.random::<f32>().powi(2)).collect();
        for &z in zeros {
            p[z] = 0.0;
        }
        let total: f32 = p.iter().sum();
        p.iter().map(|x| x / total).collect()
    }

    /// Total-variation distance between `p` and the empirical distribution of `counts`.
    fn tv(p: &[f32], counts: &[usize]) -> f64 {
        let n: usize = counts.iter().sum();
        p.iter()
            .zip(counts)
            .map(|(&p, &c)| (f64::from(p) - c as f64 / n as f64).abs())
            .sum::<f64>()
            / 2.0
    }

    /// Emits `n` tokens the speculative way (draft from q, verify against p) with `rule`.
    fn emit(
        p: &[f32],
        q: &[f32],
        n: usize,
        seed: u64,
        rule: impl Fn(&[f32], &[f32], u32, &mut StdRng) -> u32,
    ) -> Vec<usize> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut counts = vec![0; p.len()];
        for _ in 0..n {
            let d = draw(q, rng.random());
            counts[rule(p, q, d, &mut rng) as usize] += 1;
        }
        counts
    }

    fn correct(p: &[f32], q: &[f32], d: u32, rng: &mut StdRng) -> u32 {
        match verify_sampled(p, q, d, || rng.random()) {
            Verdict::Accepted => d,
            Verdict::Rejected { replacement } => replacement,
        }
    }

    /// A classic bug: on rejection, resample from p instead of the residual.
    fn resample_from_target(p: &[f32], q: &[f32], d: u32, rng: &mut StdRng) -> u32 {
        if rng.random::<f32>() * q[d as usize] < p[d as usize] {
            d
        } else {
            draw(p, rng.random())
        }
    }

    #[test]
    fn speculative_sampling_converges_to_the_target_and_a_wrong_rule_does_not() {
        let mut rng = StdRng::seed_from_u64(11);
        let (mut correct_ratio, mut wrong_ratio) = (Vec::new(), Vec::new());
        for trial in 0..5 {
            let p = random_distribution(&mut rng, 8, &[3]);
            let q = random_distribution(&mut rng, 8, &[5]);
            let few = tv(&p, &emit(&p, &q, 1_000, trial, correct));
            let many = tv(&p, &emit(&p, &q, 200_000, trial, correct));
            assert!(many < 0.006, "trial {trial}: TV {many} after 200k samples");
            correct_ratio.push(few / many);
            let wrong_few = tv(&p, &emit(&p, &q, 1_000, trial, resample_from_target));
            let wrong_many = tv(&p, &emit(&p, &q, 200_000, trial, resample_from_target));
            wrong_ratio.push(wrong_few / wrong_many);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        // Sampling noise shrinks as 1/√n: √200 ≈ 14× from 1k to 200k samples; a biased rule
        // stalls at its bias.
        assert!(mean(&correct_ratio) > 6.0, "{correct_ratio:?}");
        assert!(
            mean(&wrong_ratio) < mean(&correct_ratio) / 3.0,
            "{wrong_ratio:?} vs {correct_ratio:?}"
        );
    }

    #[test]
    fn zero_probability_drafts_are_never_accepted() {
        let mut rng = StdRng::seed_from_u64(3);
        let p = [0.5, 0.0, 0.5, 0.0];
        let q = [0.1, 0.6, 0.1, 0.2];
        for _ in 0..10_000 {
            let d = draw(&q, rng.random());
            let token = correct(&p, &q, d, &mut rng);
            assert!(p[token as usize] > 0.0, "emitted token {token} has p = 0");
            if p[d as usize] == 0.0 {
                assert_ne!(
                    verify_sampled(&p, &q, d, || rng.random()),
                    Verdict::Accepted
                );
            }
        }
    }

    #[test]
    fn a_draft_equal_to_the_target_is_always_accepted() {
        let p = [0.2, 0.3, 0.5];
        for d in 0..3 {
            assert_eq!(verify_sampled(&p, &p, d, || 0.999_999), Verdict::Accepted);
        }
        assert_eq!(verify_greedy(2, 2), Verdict::Accepted);
        assert_eq!(verify_greedy(2, 1), Verdict::Rejected { replacement: 2 });
    }
}
