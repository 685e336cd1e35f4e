//! A step's logged figures, assembled from what its rollout, dynamic-sampling and update phases
//! counted. Kept apart from the trainer so the definitions (what a rate is over, which p95) are in
//! one place and tested.

use std::time::Duration;

use super::dynamic_sampling::FilledBatch;
use super::rollout::{RolloutGroup, RolloutSample};

/// What the rollout phase of a step counted besides the groups themselves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutTally {
    /// Groups aborted by early termination.
    pub aborted: usize,
    /// Problems drawn from the easy pool.
    pub easy_draws: usize,
    pub generate: Duration,
    pub reward_wait: Duration,
    pub reward_cpu: Duration,
}

/// Means over a step's mini-batch updates (all zero when the step trained on nothing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateStats {
    pub loss: f64,
    pub grad_norm: f64,
    pub clip_fraction: f64,
    pub approx_kl: f64,
    pub mean_ratio: f64,
    pub entropy: f64,
    pub lr: f64,
    pub tokens: usize,
}

/// Everything a step measured.
pub struct StepFigures<'a, P> {
    /// Every group rolled out (kept, dropped, surplus): rollout rates are over these, so they
    /// are the policy's own rates at the rollout temperature, not the filtered batch's.
    pub generated: &'a [RolloutGroup],
    /// The batch dynamic sampling kept (only its counters are read).
    pub batch: &'a FilledBatch<P>,
    /// The kept groups.
    pub kept: &'a [RolloutGroup],
    pub easy_pool: usize,
    pub tally: &'a RolloutTally,
    pub update: &'a UpdateStats,
    pub train: Duration,
    pub step: Duration,
}

fn mean(samples: &[&RolloutSample], f: impl Fn(&RolloutSample) -> f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().map(|s| f(s)).sum::<f64>() / samples.len() as f64
}

/// The nearest-rank 95th percentile (0 for no values).
fn p95(mut values: Vec<usize>) -> usize {
    values.sort_unstable();
    let rank = (values.len() as f64 * 0.95).ceil() as usize;
    values.get(rank.saturating_sub(1)).copied().unwrap_or(0)
}

/// The step's metrics under the names the run logs (see docs/rl.md).
pub fn step_metrics<P>(f: &StepFigures<'_, P>) -> Vec<(&'static str, f64)> {
    let all: Vec<&RolloutSample> = f.generated.iter().flat_map(|g| &g.samples).collect();
    let kept: Vec<&RolloutSample> = f.kept.iter().flat_map(|g| &g.samples).collect();
    let flag = |b: bool| f64::from(u8::from(b));
    let u = f.update;
    vec![
        ("rollout/reward_mean", mean(&all, |s| s.grade.reward)),
        ("rollout/pass_rate", mean(&all, |s| flag(s.grade.correct))),
        (
            "rollout/response_len_mean",
            mean(&all, |s| s.token_ids.len() as f64),
        ),
        (
            "rollout/response_len_p95",
            p95(all.iter().map(|s| s.token_ids.len()).collect()) as f64,
        ),
        ("rollout/truncation_rate", mean(&all, |s| flag(s.truncated))),
        ("rollout/samples", all.len() as f64),
        ("batch/reward_mean", mean(&kept, |s| s.grade.reward)),
        ("batch/kept_groups", f.kept.len() as f64),
        ("batch/dropped_groups", f.batch.dropped as f64),
        ("batch/surplus_groups", f.batch.surplus as f64),
        ("batch/aborted_groups", f.tally.aborted as f64),
        ("batch/rounds", f.batch.rounds as f64),
        ("batch/cap_hit", flag(f.batch.cap_hit)),
        ("batch/easy_pool", f.easy_pool as f64),
        ("batch/easy_draws", f.tally.easy_draws as f64),
        ("train/loss", u.loss),
        ("train/entropy", u.entropy),
        ("train/clip_fraction", u.clip_fraction),
        ("train/approx_kl", u.approx_kl),
        ("train/ratio_mean", u.mean_ratio),
        ("train/grad_norm", u.grad_norm),
        ("train/lr", u.lr),
        ("train/tokens", u.tokens as f64),
        ("time/generate_s", f.tally.generate.as_secs_f64()),
        ("time/reward_wait_s", f.tally.reward_wait.as_secs_f64()),
        ("time/reward_cpu_s", f.tally.reward_cpu.as_secs_f64()),
        ("time/train_s", f.train.as_secs_f64()),
        ("time/step_s", f.step.as_secs_f64()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crucible_verify::Grade;

    fn group(problem: usize, rewards: &[f32], lens: &[usize]) -> RolloutGroup {
        RolloutGroup {
            problem,
            prompt_ids: vec![1],
            samples: rewards
                .iter()
                .zip(lens)
                .map(|(&r, &n)| RolloutSample {
                    token_ids: vec![0; n],
                    logprobs: vec![0.0; n],
                    text: String::new(),
                    truncated: n >= 10,
                    grade: Grade {
                        reward: f64::from(r),
                        correct: r == 1.0,
                        verdict: String::new(),
                        extracted: None,
                        vote: None,
                        tests: None,
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn rollout_rates_cover_every_generated_group_and_batch_rates_the_kept_ones() {
        let kept = vec![group(0, &[1., 0.], &[4, 6])];
        let generated = vec![kept[0].clone(), group(1, &[0., 0.], &[10, 2])];
        let batch = FilledBatch::<()> {
            groups: Vec::new(),
            dropped: 1,
            surplus: 0,
            rounds: 1,
            cap_hit: false,
        };
        let figures = StepFigures {
            generated: &generated,
            batch: &batch,
            kept: &kept,
            easy_pool: 3,
            tally: &RolloutTally::default(),
            update: &UpdateStats::default(),
            train: Duration::ZERO,
            step: Duration::from_secs(2),
        };
        let m = step_metrics(&figures);
        let get = |k: &str| m.iter().find(|(n, _)| *n == k).unwrap().1;
        assert_eq!(get("rollout/pass_rate"), 0.25);
        assert_eq!(get("batch/reward_mean"), 0.5);
        assert_eq!(get("rollout/response_len_mean"), 5.5);
        assert_eq!(get("rollout/response_len_p95"), 10.0);
        assert_eq!(get("rollout/truncation_rate"), 0.25);
        assert_eq!(
            (get("batch/kept_groups"), get("batch/dropped_groups")),
            (1.0, 1.0)
        );
        assert_eq!((get("batch/easy_pool"), get("time/step_s")), (3.0, 2.0));
    }

    #[test]
    fn p95_is_nearest_rank() {
        assert_eq!(p95((1..=100).collect()), 95);
        assert_eq!(p95((1..=20).collect()), 19);
        assert_eq!(p95(vec![7]), 7);
        assert_eq!(p95(Vec::new()), 0);
    }
}
