//! The rollout engine: G completions per problem with their log-probabilities, scored by the
//! verifier pool while generation goes on (MiMo's continuous rollout and asynchronous reward), and
//! stopped early once enough informative groups are complete.
//!
//! All groups of a round decode together, so they are "launched" at once and in group order.
//! Early termination follows MiMo's FIFO rule: it stops only when a prefix of the groups is
//! complete and holds the informative groups the batch still needs; later groups are aborted and
//! discarded, so no group is kept or dropped because of its response length.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crucible_gpu::engine::{
    GeneratedSequence, GenerationObserver, GenerationRequest, generate_observed,
};
use crucible_gpu::model::MimoModel;
use crucible_gpu::tokenizer::Tokenizer;
use crucible_types::sampling::{FinishReason, SamplingParams};
use crucible_verify::{Grade, PoolError, Task, TimedGrade, VerifierPool};

use super::RlError;

/// One completion of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutSample {
    pub token_ids: Vec<u32>,
    /// The sampling policy's log-probability of each token (`logp_old` of the objective).
    pub logprobs: Vec<f32>,
    pub text: String,
    /// Cut by the token budget.
    pub truncated: bool,
    /// The verifier's grade; a judge that failed (not the program) grades 0 with the reason in
    /// the verdict, so an infrastructure fault is visible in the rollout browser.
    pub grade: Grade,
}

/// A problem's G rollouts.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutGroup {
    /// Index of the problem in the run's problem list.
    pub problem: usize,
    pub prompt_ids: Vec<u32>,
    pub samples: Vec<RolloutSample>,
}

impl RolloutGroup {
    /// The rewards, in sample order.
    pub fn rewards(&self) -> Vec<f32> {
        self.samples.iter().map(|s| s.grade.reward as f32).collect()
    }
}

/// A problem to roll out: its index, prompt and task.
pub struct Draw<'a> {
    pub problem: usize,
    pub prompt_ids: &'a [u32],
    pub task: &'a Arc<Task>,
}

/// What a round cost and how it ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundStats {
    /// Groups aborted by early termination.
    pub aborted_groups: usize,
    /// Wall time of decoding.
    pub generate: Duration,
    /// Wall time spent waiting for rewards after decoding ended (what the overlap did not hide).
    pub reward_wait: Duration,
    /// Verifier time summed over jobs (most of it overlapped with decoding).
    pub reward_cpu: Duration,
}

/// How a round generates.
pub struct RoundConfig<'s> {
    pub group_size: usize,
    /// Stop once a complete prefix of groups holds this many informative ones (`None`: never).
    pub stop_after_informative: Option<usize>,
    /// Sampling of sample `j` of group slot `g`.
    pub sampling: &'s dyn Fn(usize, usize) -> SamplingParams,
}

/// Submits each finished row to the pool, folds verdicts in, and decides when to stop.
struct Scorer<'a> {
    pool: &'a mut VerifierPool,
    draws: &'a [Draw<'a>],
    group_size: usize,
    stop_after: Option<usize>,
    /// Pool job id → row.
    pending: HashMap<u64, usize>,
    grades: Vec<Option<Grade>>,
    reward_cpu: Duration,
    /// Groups kept when the round stopped early (a complete prefix).
    stopped_at: Option<usize>,
    error: Option<PoolError>,
}

impl Scorer<'_> {
    fn absorb(&mut self, graded: TimedGrade) {
        // Grades of rows aborted in an earlier round are not pending any more: ignore them.
        if let Some(row) = self.pending.remove(&graded.id) {
            self.reward_cpu += graded.ran;
            self.grades[row] = Some(graded.grade.unwrap_or_else(|e| Grade::judge_failed(&e)));
        }
    }
}

impl GenerationObserver for Scorer<'_> {
    fn on_finished(&mut self, row: usize, sequence: &GeneratedSequence) {
        if self.error.is_some() {
            return;
        }
        let task = self.draws[row / self.group_size].task.clone();
        match self.pool.submit(task, sequence.text.clone()) {
            Ok(id) => {
                self.pending.insert(id, row);
            }
            Err(e) => self.error = Some(e),
        }
    }

    fn keep_going(&mut self) -> bool {
        while let Some(v) = self.pool.try_recv() {
            self.absorb(v);
        }
        if self.error.is_some() {
            return false;
        }
        if let Some(needed) = self.stop_after
            && let Some(prefix) = satisfied_prefix(&self.grades, self.group_size, needed)
        {
            self.stopped_at = Some(prefix);
            return false;
        }
        true
    }
}

/// MiMo's FIFO early-termination rule: the length (in groups) of the shortest prefix whose groups
/// are all fully scored and hold `needed` informative groups; `None` while there is none.
pub fn satisfied_prefix(
    grades: &[Option<Grade>],
    group_size: usize,
    needed: usize,
) -> Option<usize> {
    let mut informative = 0;
    for (g, group) in grades.chunks(group_size).enumerate() {
        let rewards: Option<Vec<f64>> =
            group.iter().map(|s| s.as_ref().map(|s| s.reward)).collect();
        let rewards = rewards?;
        informative += usize::from(rewards.windows(2).any(|w| w[0] != w[1]));
        if informative >= needed {
            return Some(g + 1);
        }
    }
    None
}

/// Generates `group_size` completions for every draw in one batch, scores them in `pool` as they
/// finish, and returns the complete groups in draw order (all of them unless stopped early).
pub fn rollout_round(
    model: &MimoModel,
    tokenizer: &Tokenizer,
    pool: &mut VerifierPool,
    draws: &[Draw<'_>],
    config: &RoundConfig<'_>,
) -> Result<(Vec<RolloutGroup>, RoundStats), RlError> {
    let g_size = config.group_size;
    let context = model.config().max_position_embeddings;
    let mut requests = Vec::with_capacity(draws.len() * g_size);
    for (g, d) in draws.iter().enumerate() {
        let room = context.saturating_sub(d.prompt_ids.len());
        if room == 0 {
            return Err(RlError::Input {
                name: "problems",
                reason: format!(
                    "problem {} has a {}-token prompt; the model's context is {context}",
                    d.problem,
                    d.prompt_ids.len()
                ),
            });
        }
        for j in 0..g_size {
            let mut params = (config.sampling)(g, j);
            params.max_new_tokens = params
                .max_new_tokens
                .min(u32::try_from(room).unwrap_or(u32::MAX));
            requests.push(GenerationRequest {
                prompt_ids: d.prompt_ids.to_vec(),
                params,
            });
        }
    }
    let mut scorer = Scorer {
        pool,
        draws,
        group_size: g_size,
        stop_after: config.stop_after_informative,
        pending: HashMap::new(),
        grades: vec![None; requests.len()],
        reward_cpu: Duration::ZERO,
        stopped_at: None,
        error: None,
    };
    let started = Instant::now();
    let sequences = generate_observed(model, tokenizer, &requests, &mut scorer)?;
    let generate = started.elapsed();
    let kept = scorer.stopped_at.unwrap_or(draws.len());
    let waiting = Instant::now();
    // Wait for the grades of the kept groups; a late grade of an aborted row is dropped.
    while scorer.grades[..kept * g_size].iter().any(Option::is_none) {
        if let Some(e) = scorer.error.take() {
            return Err(e.into());
        }
        if let Some(v) = scorer.pool.recv_timeout(Duration::from_millis(50))? {
            scorer.absorb(v);
        }
    }
    let reward_wait = waiting.elapsed();
    let mut grades = std::mem::take(&mut scorer.grades).into_iter();
    let mut sequences = sequences.into_iter();
    let groups = draws[..kept]
        .iter()
        .map(|d| RolloutGroup {
            problem: d.problem,
            prompt_ids: d.prompt_ids.to_vec(),
            samples: (0..g_size)
                .map(|_| {
                    let seq = sequences.next().expect("one sequence per request");
                    let grade = grades.next().flatten().expect("waited for every grade");
                    debug_assert_ne!(seq.finish_reason, FinishReason::Aborted);
                    RolloutSample {
                        truncated: seq.finish_reason == FinishReason::Length,
                        token_ids: seq.token_ids,
                        logprobs: seq.logprobs,
                        text: seq.text,
                        grade,
                    }
                })
                .collect(),
        })
        .collect();
    Ok((
        groups,
        RoundStats {
            aborted_groups: draws.len() - kept,
            generate,
            reward_wait,
            reward_cpu: scorer.reward_cpu,
        },
    ))
}

/// The rollouts of `step` as the run's completion records (the rollout browser's rows): group
/// `g` of the step, sample `j`, with the problem's id and prompt, the reward and the verdict.
pub fn completion_records(
    step: u64,
    problems: &[crate::eval::Problem],
    groups: &[RolloutGroup],
) -> Vec<crucible_types::CompletionRecord> {
    let to_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    groups
        .iter()
        .enumerate()
        .flat_map(|(g, group)| {
            let problem = &problems[group.problem];
            group
                .samples
                .iter()
                .enumerate()
                .map(move |(j, s)| crucible_types::CompletionRecord {
                    step: i64::try_from(step).unwrap_or(i64::MAX),
                    group_idx: to_i32(g),
                    sample_idx: to_i32(j),
                    problem_id: problem.id.clone(),
                    prompt: problem.prompt.clone(),
                    completion: s.text.clone(),
                    reward: Some(s.grade.reward),
                    verdict: Some(s.grade.verdict.clone()),
                    tokens: to_i32(s.token_ids.len()),
                    truncated: s.truncated,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(reward: f64) -> Option<Grade> {
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
    fn early_termination_waits_for_a_complete_prefix() {
        // Groups of 2: [0,1] informative, [1,1] uniform, [?,0] pending, [1,0] informative.
        let mut scores = vec![s(0.), s(1.), s(1.), s(1.), None, s(0.), s(1.), s(0.)];
        assert_eq!(satisfied_prefix(&scores, 2, 1), Some(1));
        // The fourth group is informative, but the third (launched before it) is still running.
        assert_eq!(satisfied_prefix(&scores, 2, 2), None);
        scores[4] = s(0.);
        assert_eq!(satisfied_prefix(&scores, 2, 2), Some(4));
        scores[4] = s(1.);
        assert_eq!(satisfied_prefix(&scores, 2, 2), Some(3));
        assert_eq!(satisfied_prefix(&scores, 2, 4), None);
    }
}
