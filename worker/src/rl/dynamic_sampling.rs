//! Which problems go into a rollout batch: dynamic sampling keeps only groups that carry a gradient,
//! and the easy pool keeps solved problems in rotation at a low rate instead of deleting them
//! (deleting them destabilised MiMo's training).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::RlError;

/// One problem's rollouts, scored. Generic over the problem so callers can use ids or full records.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredGroup<P> {
    pub problem: P,
    pub rewards: Vec<f32>,
}

impl<P> ScoredGroup<P> {
    /// A group whose rewards are all equal has zero advantage everywhere, so it adds no gradient
    /// and only dilutes the batch.
    pub fn is_informative(&self) -> bool {
        is_informative(&self.rewards)
    }

    /// Every rollout reached `solved_reward`: the problem is no longer teaching anything.
    pub fn solved_by_all(&self, solved_reward: f32) -> bool {
        !self.rewards.is_empty() && self.rewards.iter().all(|r| *r >= solved_reward)
    }
}

/// Rewards that are not all equal: the group's advantages are not all zero, so it carries a
/// gradient.
pub fn is_informative(rewards: &[f32]) -> bool {
    rewards.windows(2).any(|w| w[0] != w[1])
}

/// Dynamic-sampling settings. `max_rounds` bounds the refills so a batch of all-solved (or
/// all-failed) problems slows the run down instead of hanging it. `drop_uniform_groups = false`
/// gives the comparison run without dynamic sampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynamicSamplingConfig {
    pub groups_per_batch: usize,
    pub max_rounds: usize,
    pub drop_uniform_groups: bool,
}

/// The batch dynamic sampling produced, with what the run logs per step.
#[derive(Debug, Clone, PartialEq)]
pub struct FilledBatch<P> {
    pub groups: Vec<ScoredGroup<P>>,
    /// Groups discarded because all their rewards were equal.
    pub dropped: usize,
    /// Informative groups sampled beyond the batch size and not used.
    pub surplus: Vec<ScoredGroup<P>>,
    pub rounds: usize,
    /// True when `max_rounds` ran out before the batch was full; the batch is then short.
    pub cap_hit: bool,
}

/// Calls `sample_round(round, groups_still_needed)` until `groups_per_batch` informative groups are
/// kept or `max_rounds` rounds have run. Hitting the cap is logged and flagged, never an error; only
/// the sampler's own error stops the fill.
pub fn fill_batch<P, E>(
    config: DynamicSamplingConfig,
    mut sample_round: impl FnMut(usize, usize) -> Result<Vec<ScoredGroup<P>>, E>,
) -> Result<FilledBatch<P>, E> {
    let mut batch = FilledBatch {
        groups: Vec::with_capacity(config.groups_per_batch),
        dropped: 0,
        surplus: Vec::new(),
        rounds: 0,
        cap_hit: false,
    };
    while batch.groups.len() < config.groups_per_batch {
        if batch.rounds == config.max_rounds {
            batch.cap_hit = true;
            tracing::warn!(
                kept = batch.groups.len(),
                wanted = config.groups_per_batch,
                dropped = batch.dropped,
                rounds = batch.rounds,
                "dynamic sampling hit its round cap; training on a short batch"
            );
            break;
        }
        let needed = config.groups_per_batch - batch.groups.len();
        let sampled = sample_round(batch.rounds, needed)?;
        batch.rounds += 1;
        for group in sampled {
            if config.drop_uniform_groups && !group.is_informative() {
                batch.dropped += 1;
            } else if batch.groups.len() < config.groups_per_batch {
                batch.groups.push(group);
            } else {
                batch.surplus.push(group);
            }
        }
    }
    Ok(batch)
}

/// Where a drawn problem came from, so the run can log the easy-pool share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawSource {
    Main,
    Easy,
}

/// The problem set split into the main set and the easy pool, with a seeded RNG so a resumed or
/// repeated run draws the same problems.
#[derive(Debug, Clone)]
pub struct ProblemDrawer<P> {
    main: Vec<P>,
    easy: Vec<P>,
    alpha: f64,
    solved_reward: f32,
    rng: StdRng,
}

impl<P: Clone + PartialEq> ProblemDrawer<P> {
    /// `alpha` is the probability of drawing from the easy pool (MiMo: 0.1); `solved_reward` is the
    /// reward that counts as solved (1.0 for binary verifiers).
    pub fn new(
        problems: Vec<P>,
        alpha: f64,
        solved_reward: f32,
        seed: u64,
    ) -> Result<Self, RlError> {
        if !(0.0..=1.0).contains(&alpha) {
            return Err(RlError::Config {
                name: "alpha".into(),
                reason: format!("must be a probability in [0, 1], got {alpha}"),
            });
        }
        Ok(Self {
            main: problems,
            easy: Vec::new(),
            alpha,
            solved_reward,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// A drawer continuing a saved state: the main set and the easy pool in their saved order.
    pub fn restore(
        main: Vec<P>,
        easy: Vec<P>,
        alpha: f64,
        solved_reward: f32,
        seed: u64,
    ) -> Result<Self, RlError> {
        let mut drawer = Self::new(main, alpha, solved_reward, seed)?;
        drawer.easy = easy;
        Ok(drawer)
    }

    /// Restarts the random generator. The RL loop reseeds at every step from (seed, step), so a
    /// run resumed from a checkpoint draws exactly what the uninterrupted run would have.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// Draws uniformly from the easy pool with probability α, else from the main set; falls back to
    /// whichever is non-empty. `None` only when both are empty.
    pub fn draw(&mut self) -> Option<(P, DrawSource)> {
        let want_easy = !self.easy.is_empty() && self.rng.random_bool(self.alpha);
        let (pool, source) = if want_easy || self.main.is_empty() {
            (&self.easy, DrawSource::Easy)
        } else {
            (&self.main, DrawSource::Main)
        };
        if pool.is_empty() {
            return None;
        }
        let i = self.rng.random_range(0..pool.len());
        Some((pool[i].clone(), source))
    }

    /// Moves the group's problem into the easy pool when every rollout solved it.
    pub fn record(&mut self, group: &ScoredGroup<P>) {
        if !group.solved_by_all(self.solved_reward) {
            return;
        }
        if let Some(i) = self.main.iter().position(|p| *p == group.problem) {
            let problem = self.main.swap_remove(i);
            self.easy.push(problem);
        }
    }

    /// Problems still in the main set.
    pub fn main(&self) -> &[P] {
        &self.main
    }

    /// Problems moved into the easy pool.
    pub fn easy(&self) -> &[P] {
        &self.easy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn group(problem: u32, rewards: &[f32]) -> ScoredGroup<u32> {
        ScoredGroup {
            problem,
            rewards: rewards.to_vec(),
        }
    }

    fn config(groups_per_batch: usize, max_rounds: usize) -> DynamicSamplingConfig {
        DynamicSamplingConfig {
            groups_per_batch,
            max_rounds,
            drop_uniform_groups: true,
        }
    }

    #[test]
    fn uniform_groups_are_dropped_and_the_batch_is_refilled() {
        // Round 0: two informative of four; round 1: one of two needed comes through plus one
        // all-solved; round 2 fills the last slot and over-delivers one.
        let rounds = [
            vec![
                group(1, &[1., 0.]),
                group(2, &[0., 0.]),
                group(3, &[0.5, 1.]),
                group(4, &[1., 1.]),
            ],
            vec![group(5, &[0., 1.]), group(6, &[1., 1.])],
            vec![group(7, &[1., 0.]), group(8, &[0., 1.])],
        ];
        let mut needs = Vec::new();
        let batch = fill_batch(config(4, 10), |round, needed| {
            needs.push(needed);
            Ok::<_, Infallible>(rounds[round].clone())
        })
        .unwrap();
        let kept: Vec<u32> = batch.groups.iter().map(|g| g.problem).collect();
        assert_eq!(kept, vec![1, 3, 5, 7]);
        assert_eq!(needs, vec![4, 2, 1]);
        assert_eq!(
            (batch.dropped, batch.surplus.len(), batch.rounds),
            (3, 1, 3)
        );
        assert_eq!(batch.surplus[0].problem, 8);
        assert!(!batch.cap_hit);
    }

    #[test]
    fn round_cap_returns_a_short_batch_with_the_flag() {
        let mut calls = 0;
        let batch = fill_batch(config(3, 4), |round, _| {
            calls += 1;
            // Only the first round yields an informative group; the rest are all-failed.
            let rewards: &[f32] = if round == 0 { &[1., 0.] } else { &[0., 0.] };
            Ok::<_, Infallible>(vec![group(round as u32, rewards)])
        })
        .unwrap();
        assert_eq!(calls, 4);
        assert!(batch.cap_hit);
        assert_eq!(batch.groups.len(), 1);
        assert_eq!((batch.dropped, batch.rounds), (3, 4));
    }

    #[test]
    fn without_dynamic_sampling_uniform_groups_are_kept() {
        let off = DynamicSamplingConfig {
            drop_uniform_groups: false,
            ..config(2, 1)
        };
        let batch = fill_batch(off, |_, _| {
            Ok::<_, Infallible>(vec![group(1, &[0., 0.]), group(2, &[1., 1.])])
        })
        .unwrap();
        assert_eq!(
            (batch.groups.len(), batch.dropped, batch.cap_hit),
            (2, 0, false)
        );
    }

    #[test]
    fn sampler_errors_propagate() {
        let result: Result<FilledBatch<u32>, &str> =
            fill_batch(config(1, 3), |_, _| Err("engine down"));
        assert_eq!(result.unwrap_err(), "engine down");
    }

    #[test]
    fn problem_solved_by_every_rollout_moves_to_the_easy_pool() {
        let mut drawer = ProblemDrawer::new(vec![1u32, 2, 3], 0.1, 1.0, 7).unwrap();
        drawer.record(&group(2, &[1., 0.5, 1.]));
        assert!(drawer.easy().is_empty());
        drawer.record(&group(2, &[1., 1., 1.]));
        assert_eq!(drawer.easy(), &[2]);
        assert!(!drawer.main().contains(&2));
        assert_eq!(drawer.main().len(), 2);
    }

    #[test]
    fn easy_pool_is_drawn_with_probability_alpha() {
        let problems: Vec<u32> = (0..100).collect();
        let mut drawer = ProblemDrawer::new(problems, 0.1, 1.0, 42).unwrap();
        for p in 0..10 {
            drawer.record(&group(p, &[1., 1.]));
        }
        let draws = 20_000;
        let mut easy = 0;
        for _ in 0..draws {
            let (p, source) = drawer.draw().unwrap();
            assert_eq!(
                source == DrawSource::Easy,
                p < 10,
                "problem {p} from {source:?}"
            );
            easy += usize::from(source == DrawSource::Easy);
        }
        // Binomial(20000, 0.1) has sd ≈ 0.0021; 0.01 is almost 5 sd.
        let share = easy as f64 / draws as f64;
        assert!((share - 0.1).abs() < 0.01, "easy share {share}");
    }

    #[test]
    fn restored_and_reseeded_drawers_draw_alike() {
        let mut a = ProblemDrawer::new((0..20u32).collect(), 0.5, 1.0, 3).unwrap();
        a.record(&group(4, &[1., 1.]));
        a.record(&group(9, &[1., 1.]));
        let mut b =
            ProblemDrawer::restore(a.main().to_vec(), a.easy().to_vec(), 0.5, 1.0, 99).unwrap();
        a.reseed(7);
        b.reseed(7);
        let draws = |d: &mut ProblemDrawer<u32>| (0..50).map(|_| d.draw()).collect::<Vec<_>>();
        assert_eq!(draws(&mut a), draws(&mut b));
    }

    #[test]
    fn drawer_falls_back_and_rejects_bad_alpha() {
        assert!(ProblemDrawer::new(vec![1u32], 1.5, 1.0, 0).is_err());
        let mut drawer = ProblemDrawer::new(vec![1u32], 0.0, 1.0, 0).unwrap();
        drawer.record(&group(1, &[1.]));
        // The main set is empty, so even α = 0 draws from the easy pool.
        assert_eq!(drawer.draw(), Some((1, DrawSource::Easy)));
        let mut empty = ProblemDrawer::<u32>::new(Vec::new(), 0.1, 1.0, 0).unwrap();
        assert_eq!(empty.draw(), None);
    }
}
