//! MiMo's seamless rollout: one step's groups decode as one continuous batch. When a row
//! finishes, it takes the next sample of the next group at once (there is no barrier between
//! dynamic-sampling rounds), each finished sample is scored while the others decode, and the step
//! ends as soon as the FIFO prefix of groups holds the batch (early termination; the groups in
//! flight are aborted and counted as waste).
//!
//! What is kept does not depend on timing: groups launch in a fixed order (drawn from
//! (seed, step) before decoding), each sample's seed is fixed by (step, group, sample) and not by
//! its row, and the kept groups are the shortest prefix of that order holding enough informative
//! ones, a function of the samples alone. Timing decides only how much is wasted or idle. Every
//! sample is decoded by the one model the step was given, so the step is strictly on-policy.

use std::time::Instant;

use crucible_gpu::engine::generate_continuous;
use crucible_gpu::model::MimoModel;
use crucible_gpu::tokenizer::Tokenizer;
use crucible_verify::{Grade, VerifierPool};

use super::RlError;
use super::rollout::{
    Draw, Launch, RolloutGroup, RoundConfig, RoundStats, Scorer, finish_round, requests,
};

/// How sure the launch policy must be that the groups in flight fill the batch before it stops
/// launching, in standard deviations of the predicted informative count: higher wastes more
/// samples at the end of a step, lower leaves more rows idle while the last groups finish.
const LAUNCH_CONFIDENCE_SD: f64 = 1.0;

/// Weight, in groups, of the run's informative-rate estimate against the groups of this step.
const PRIOR_GROUPS: f64 = 4.0;

/// MiMo's on-demand launching: a new group starts only while the launched groups are predicted
/// not to hold the informative groups still needed (a started group always gets all its samples,
/// and a request is never refused while no row decodes, so the batch cannot stall).
pub(crate) struct LaunchPolicy {
    group_size: usize,
    needed: usize,
    /// The run's share of informative groups before this step.
    prior_rate: f64,
}

impl LaunchPolicy {
    /// A policy for `needed` informative groups of `group_size` samples, expecting a share
    /// `prior_rate` of groups to be informative.
    pub(crate) fn new(group_size: usize, needed: usize, prior_rate: f64) -> Self {
        LaunchPolicy {
            group_size,
            needed,
            prior_rate: prior_rate.clamp(0.0, 1.0),
        }
    }

    /// The mean and variance of the number of informative groups among the first `groups` of
    /// `grades`: a fully graded group counts what it is, a partly graded one whose rewards already
    /// differ counts 1, any other counts the informative rate seen so far.
    fn predicted(&self, grades: &[Option<Grade>], groups: usize) -> (f64, f64) {
        let chunks = grades.chunks(self.group_size).take(groups);
        let (mut done, mut informative) = (0.0, 0.0);
        let mut open = Vec::new();
        for group in chunks {
            let rewards: Vec<f64> = group.iter().flatten().map(|g| g.reward).collect();
            let differ = rewards.windows(2).any(|w| w[0] != w[1]);
            if rewards.len() == group.len() {
                done += 1.0;
                informative += f64::from(u8::from(differ));
            } else {
                open.push(differ);
            }
        }
        let rate = (self.prior_rate * PRIOR_GROUPS + informative) / (PRIOR_GROUPS + done);
        let mut mean = informative;
        let mut variance = 0.0;
        for differ in open {
            if differ {
                mean += 1.0;
            } else {
                mean += rate;
                variance += rate * (1.0 - rate);
            }
        }
        (mean, variance)
    }
}

impl Launch for LaunchPolicy {
    fn admit(&mut self, request: usize, running: usize, grades: &[Option<Grade>]) -> bool {
        if running == 0 || !request.is_multiple_of(self.group_size) {
            return true;
        }
        let (mean, variance) = self.predicted(grades, request / self.group_size);
        mean - LAUNCH_CONFIDENCE_SD * variance.sqrt() < self.needed as f64
    }
}

/// Rolls out `draws` (the step's whole launch order, `group_size` samples each) with `rows`
/// sequences decoding at once, launching groups on demand, and returns the FIFO prefix of groups
/// that holds `config.stop_after_informative` informative ones (every group when none is asked
/// for, or when the draws run out first). `prior_rate` is the run's informative share so far.
pub fn rollout_seamless(
    model: &MimoModel,
    tokenizer: &Tokenizer,
    pool: &mut VerifierPool,
    draws: &[Draw<'_>],
    config: &RoundConfig<'_>,
    rows: usize,
    prior_rate: f64,
) -> Result<(Vec<RolloutGroup>, RoundStats), RlError> {
    let requests = requests(model, draws, config)?;
    let needed = config.stop_after_informative.unwrap_or(draws.len());
    let launch = LaunchPolicy::new(config.group_size, needed, prior_rate);
    let mut scorer = Scorer::new(pool, draws, config, requests.len(), rows, launch);
    let started = Instant::now();
    let sequences = generate_continuous(model, tokenizer, &requests, rows, &mut scorer)?;
    finish_round(scorer, sequences, started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rl::rollout::satisfied_prefix;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    fn grade(reward: f64) -> Option<Grade> {
        Some(Grade {
            reward,
            correct: reward == 1.0,
            verdict: String::new(),
            extracted: None,
            vote: None,
            tests: None,
        })
    }

    #[test]
    fn the_kept_prefix_is_the_same_under_every_completion_order() {
        // 40 groups of 4 with seeded rewards; samples finish (and are graded) in a shuffled
        // order, and the FIFO rule is checked after every verdict, as the engine does before
        // every decode step. Whatever the order, the batch stops at the same prefix.
        let (g, needed) = (4, 6);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let rewards: Vec<f64> = (0..40 * g)
            .map(|_| f64::from(u8::from(rng.random_bool(0.2))))
            .collect();
        let mut everything = vec![None; rewards.len()];
        for (slot, &r) in everything.iter_mut().zip(&rewards) {
            *slot = grade(r);
        }
        let expected = satisfied_prefix(&everything, g, needed).expect("enough informative");
        for seed in 0..50 {
            let mut order: Vec<usize> = (0..rewards.len()).collect();
            order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
            let mut grades = vec![None; rewards.len()];
            let mut stopped = None;
            for &i in &order {
                grades[i] = grade(rewards[i]);
                if let Some(p) = satisfied_prefix(&grades, g, needed) {
                    stopped = Some(p);
                    break;
                }
            }
            assert_eq!(stopped, Some(expected), "order {seed}");
        }
    }

    #[test]
    fn launching_stops_once_the_groups_in_flight_should_fill_the_batch() {
        let mut policy = LaunchPolicy::new(3, 2, 0.5);
        // Two groups launched, nothing graded: 1 ± 0.71 expected, short of 2: launch a third.
        assert!(policy.admit(6, 6, &vec![None; 6]));
        // Both informative: nothing more is needed, except a started group's next sample, or
        // any request when no row decodes.
        let both = [
            grade(0.),
            grade(1.),
            grade(1.),
            grade(1.),
            grade(0.),
            grade(0.),
        ];
        assert!(!policy.admit(6, 3, &both));
        assert!(policy.admit(7, 3, &both));
        assert!(policy.admit(6, 0, &both));
        // One informative, one uniform, one open whose rewards already differ: enough.
        let first = &both[..3];
        let uniform = [grade(1.), grade(1.), grade(1.)];
        let differ = [grade(0.), grade(1.), None];
        assert!(!policy.admit(9, 1, &[first, &uniform[..], &differ[..]].concat()));
        // The open one agreeing so far: the rate (0.5 prior over 4 groups, 1 of 2 seen) says
        // 1.5 ± 0.5, short of 2: launch another.
        let agree = [grade(1.), grade(1.), None];
        assert!(policy.admit(9, 1, &[first, &uniform[..], &agree[..]].concat()));
    }
}
