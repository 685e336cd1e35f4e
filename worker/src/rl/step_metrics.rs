//! A step's logged figures, assembled from what its rollout, dynamic-sampling and update phases
//! counted. Kept apart from the trainer so the definitions (what a rate is over, which p95) are in
//! one place and tested.

use std::collections::BTreeMap;
use std::time::Duration;

use super::dynamic_sampling::FilledBatch;
use super::rollout::{RolloutGroup, RolloutSample, RoundStats};

/// What the rollout phase of a step counted besides the groups themselves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutTally {
    /// Groups aborted by early termination (or finished after the kept prefix).
    pub aborted: usize,
    /// Problems drawn from the easy pool among the groups rolled out.
    pub easy_draws: usize,
    /// Rows the engine decodes at once (the seamless engine; a lockstep round has one per sample).
    pub rows: usize,
    /// Wall time of the whole rollout phase (drawing, decoding, waiting for rewards).
    pub rollout: Duration,
    pub generate: Duration,
    pub reward_wait: Duration,
    pub reward_cpu: Duration,
    pub decoded_tokens: usize,
    /// Tokens and samples of aborted groups (never trained on nor stored).
    pub wasted_tokens: usize,
    pub wasted_samples: usize,
    pub busy_row_s: f64,
    pub capacity_row_s: f64,
}

impl RolloutTally {
    /// Adds one round's costs.
    pub fn add(&mut self, s: &RoundStats) {
        self.aborted += s.aborted_groups;
        self.generate += s.generate;
        self.reward_wait += s.reward_wait;
        self.reward_cpu += s.reward_cpu;
        self.decoded_tokens += s.decoded_tokens;
        self.wasted_tokens += s.wasted_tokens;
        self.wasted_samples += s.wasted_samples;
        self.busy_row_s += s.busy_row_s;
        self.capacity_row_s += s.capacity_row_s;
    }
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
pub struct StepFigures<'a> {
    /// Every group rolled out (kept, dropped, surplus): rollout rates are over these, so they
    /// are the policy's own rates at the rollout temperature, not the filtered batch's.
    pub generated: &'a [RolloutGroup],
    /// The batch dynamic sampling kept (its counters and surplus groups are read).
    pub batch: &'a FilledBatch<RolloutGroup>,
    /// The kept groups.
    pub kept: &'a [RolloutGroup],
    /// The difficulty level (or dataset) of each of the run's problems, by problem index.
    pub levels: &'a [String],
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

/// `a / b`, 0 when `b` is 0.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// The step's metrics under the names the run logs (see docs/rl.md).
pub fn step_metrics(f: &StepFigures<'_>) -> Vec<(String, f64)> {
    let all: Vec<&RolloutSample> = f.generated.iter().flat_map(|g| &g.samples).collect();
    let kept: Vec<&RolloutSample> = f.kept.iter().flat_map(|g| &g.samples).collect();
    let flag = |b: bool| f64::from(u8::from(b));
    let u = f.update;
    let t = f.tally;
    let surplus_tokens: usize = f.batch.surplus.iter().map(|g| g.problem.tokens()).sum();
    let surplus_samples: usize = f.batch.surplus.iter().map(|g| g.rewards.len()).sum();
    let generate = t.generate.as_secs_f64();
    let rollout = t.rollout.as_secs_f64();
    let utilisation = ratio(t.busy_row_s, t.capacity_row_s);
    let mut out: Vec<(String, f64)> = [
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
        ("rollout/rows", t.rows as f64),
        ("rollout/slot_utilisation", utilisation),
        (
            "rollout/idle_fraction",
            1.0 - utilisation * ratio(generate, rollout).min(1.0),
        ),
        ("rollout/decoded_tokens", t.decoded_tokens as f64),
        (
            "rollout/wasted_samples",
            (t.wasted_samples + surplus_samples) as f64,
        ),
        (
            "rollout/waste_fraction",
            ratio(
                (t.wasted_tokens + surplus_tokens) as f64,
                t.decoded_tokens as f64,
            ),
        ),
        ("batch/reward_mean", mean(&kept, |s| s.grade.reward)),
        ("batch/kept_groups", f.kept.len() as f64),
        ("batch/kept_samples", kept.len() as f64),
        ("batch/dropped_groups", f.batch.dropped as f64),
        ("batch/surplus_groups", f.batch.surplus.len() as f64),
        ("batch/aborted_groups", t.aborted as f64),
        ("batch/rounds", f.batch.rounds as f64),
        ("batch/cap_hit", flag(f.batch.cap_hit)),
        ("batch/easy_pool", f.easy_pool as f64),
        ("batch/easy_draws", t.easy_draws as f64),
        ("train/loss", u.loss),
        ("train/entropy", u.entropy),
        ("train/clip_fraction", u.clip_fraction),
        ("train/approx_kl", u.approx_kl),
        ("train/ratio_mean", u.mean_ratio),
        ("train/grad_norm", u.grad_norm),
        ("train/lr", u.lr),
        ("train/tokens", u.tokens as f64),
        ("time/rollout_s", rollout),
        ("time/generate_s", generate),
        ("time/reward_wait_s", t.reward_wait.as_secs_f64()),
        ("time/reward_cpu_s", t.reward_cpu.as_secs_f64()),
        ("time/idle_s", (rollout - generate).max(0.0)),
        ("time/train_s", f.train.as_secs_f64()),
        ("time/step_s", f.step.as_secs_f64()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut by_level: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for group in f.generated {
        let entry = by_level
            .entry(f.levels[group.problem].as_str())
            .or_default();
        entry.0 += group.samples.iter().filter(|s| s.grade.correct).count();
        entry.1 += group.samples.len();
    }
    for (level, (correct, samples)) in by_level {
        out.push((
            format!("rollout/pass_rate/{level}"),
            ratio(correct as f64, samples as f64),
        ));
    }
    out
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
        let surplus = group(2, &[0., 1.], &[3, 5]);
        let generated = vec![
            kept[0].clone(),
            group(1, &[0., 0.], &[10, 2]),
            surplus.clone(),
        ];
        let batch = FilledBatch {
            groups: Vec::new(),
            dropped: 1,
            surplus: vec![crate::rl::dynamic_sampling::ScoredGroup {
                rewards: surplus.rewards(),
                problem: surplus,
            }],
            rounds: 1,
            cap_hit: false,
        };
        // 8 rows decoded 2 s of a 2.5 s rollout, half of them busy on average; 70 tokens in all,
        // 40 of them aborted, 8 more in the surplus group.
        let tally = RolloutTally {
            rows: 8,
            rollout: Duration::from_millis(2500),
            generate: Duration::from_secs(2),
            decoded_tokens: 70,
            wasted_tokens: 40,
            wasted_samples: 3,
            busy_row_s: 8.0,
            capacity_row_s: 16.0,
            ..RolloutTally::default()
        };
        let levels = vec!["s1d1".to_string(), "s2d1".to_string(), "s1d1".to_string()];
        let figures = StepFigures {
            generated: &generated,
            batch: &batch,
            kept: &kept,
            levels: &levels,
            easy_pool: 3,
            tally: &tally,
            update: &UpdateStats::default(),
            train: Duration::ZERO,
            step: Duration::from_secs(3),
        };
        let m = step_metrics(&figures);
        let get = |k: &str| m.iter().find(|(n, _)| *n == k).unwrap().1;
        assert_eq!(get("rollout/pass_rate"), 2.0 / 6.0);
        assert_eq!(get("rollout/pass_rate/s1d1"), 0.5);
        assert_eq!(get("rollout/pass_rate/s2d1"), 0.0);
        assert_eq!(get("batch/reward_mean"), 0.5);
        assert_eq!(get("rollout/response_len_mean"), 5.0);
        assert_eq!(get("rollout/response_len_p95"), 10.0);
        assert_eq!(get("rollout/truncation_rate"), 1.0 / 6.0);
        assert_eq!(
            (get("batch/kept_groups"), get("batch/dropped_groups")),
            (1.0, 1.0)
        );
        assert_eq!(
            (get("batch/kept_samples"), get("batch/surplus_groups")),
            (2.0, 1.0)
        );
        assert_eq!((get("batch/easy_pool"), get("time/step_s")), (3.0, 3.0));
        assert_eq!(get("rollout/slot_utilisation"), 0.5);
        // Idle: the 0.5 s not decoding, and half the rows during the 2 s decoding.
        assert!((get("rollout/idle_fraction") - 0.6).abs() < 1e-12);
        assert!((get("time/idle_s") - 0.5).abs() < 1e-12);
        assert_eq!(get("rollout/waste_fraction"), 48.0 / 70.0);
        assert_eq!(get("rollout/wasted_samples"), 5.0);
    }

    #[test]
    fn p95_is_nearest_rank() {
        assert_eq!(p95((1..=100).collect()), 95);
        assert_eq!(p95((1..=20).collect()), 19);
        assert_eq!(p95(vec![7]), 7);
        assert_eq!(p95(Vec::new()), 0);
    }
}
