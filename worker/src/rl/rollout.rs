//! What both rollout engines share: the groups they return, the requests they decode, the
//! observer that scores every finished row in the verifier pool while decoding goes on (MiMo's
//! asynchronous reward) and stops the batch under MiMo's FIFO early-termination rule, and the
//! assembly of the kept groups; plus the lockstep engine, [`rollout_round`] (naive dynamic
//! sampling: one round, one batch). The seamless engine is [`super::seamless`].
//!
//! Early termination stops only when a prefix of the groups (in launch order) is complete and
//! holds the informative groups the batch still needs; later groups are aborted and discarded,
//! so no group is kept or dropped because of its response length or of when it finished.

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
use crate::telemetry::telemetry;

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

    /// Tokens decoded for the group (what it cost the engine).
    pub fn tokens(&self) -> usize {
        self.samples.iter().map(|s| s.token_ids.len()).sum()
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
    /// Groups started but aborted by early termination, or finished after the kept prefix.
    pub aborted_groups: usize,
    /// Samples of those groups that decoded at least one token.
    pub wasted_samples: usize,
    /// Tokens decoded for those samples.
    pub wasted_tokens: usize,
    /// Tokens decoded in all (returned groups and wasted samples).
    pub decoded_tokens: usize,
    /// Wall time of decoding.
    pub generate: Duration,
    /// Wall time spent waiting for rewards after decoding ended (what the overlap did not hide).
    pub reward_wait: Duration,
    /// Verifier time summed over jobs (most of it overlapped with decoding).
    pub reward_cpu: Duration,
    /// Row-seconds rows spent decoding a sequence, and row-seconds available (rows × decoding
    /// time): their ratio is the slot utilisation.
    pub busy_row_s: f64,
    pub capacity_row_s: f64,
}

/// How a round generates.
pub struct RoundConfig<'s> {
    pub group_size: usize,
    /// Stop once a complete prefix of groups holds this many informative ones (`None`: never).
    pub stop_after_informative: Option<usize>,
    /// Sampling of sample `j` of group slot `g`.
    pub sampling: &'s dyn Fn(usize, usize) -> SamplingParams,
}

/// Decides whether the next waiting request may start (the seamless engine's launch policy).
pub(crate) trait Launch {
    /// `grades` holds every launched request's grade so far (`None`: decoding or not yet graded);
    /// `request` is the next one in launch order, `running` the rows decoding.
    fn admit(&mut self, request: usize, running: usize, grades: &[Option<Grade>]) -> bool;
}

/// Launches every request (the lockstep engine starts them all at once anyway).
impl Launch for () {
    fn admit(&mut self, _: usize, _: usize, _: &[Option<Grade>]) -> bool {
        true
    }
}

/// Submits each finished row to the pool, folds verdicts in, decides when to stop, and keeps the
/// clock of how busy the rows were.
pub(crate) struct Scorer<'a, L> {
    pool: &'a mut VerifierPool,
    draws: &'a [Draw<'a>],
    group_size: usize,
    stop_after: Option<usize>,
    launch: L,
    /// Pool job id → row.
    pending: HashMap<u64, usize>,
    grades: Vec<Option<Grade>>,
    reward_cpu: Duration,
    /// Groups kept when the round stopped early (a complete prefix).
    stopped_at: Option<usize>,
    error: Option<PoolError>,
    rows: usize,
    /// Rows decoding now, and at the last decode step with its start.
    running: usize,
    tick: Option<(Instant, usize)>,
    busy_row_s: f64,
    capacity_row_s: f64,
}

impl<'a, L: Launch> Scorer<'a, L> {
    /// A scorer for `requests` requests decoded `rows` at a time, the first `rows` started.
    pub(crate) fn new(
        pool: &'a mut VerifierPool,
        draws: &'a [Draw<'a>],
        config: &RoundConfig<'_>,
        requests: usize,
        rows: usize,
        launch: L,
    ) -> Self {
        Scorer {
            pool,
            draws,
            group_size: config.group_size,
            stop_after: config.stop_after_informative,
            launch,
            pending: HashMap::new(),
            grades: vec![None; requests],
            reward_cpu: Duration::ZERO,
            stopped_at: None,
            error: None,
            rows,
            running: rows.min(requests),
            tick: None,
            busy_row_s: 0.0,
            capacity_row_s: 0.0,
        }
    }

    fn absorb(&mut self, graded: TimedGrade) {
        telemetry().graded(graded.queued, graded.ran, self.pool.pending());
        // Grades of rows aborted in an earlier round are not pending any more: ignore them.
        if let Some(row) = self.pending.remove(&graded.id) {
            self.reward_cpu += graded.ran;
            self.grades[row] = Some(graded.grade.unwrap_or_else(|e| Grade::judge_failed(&e)));
        }
    }

    /// Charges the time since the last decode step to the rows that decoded in it.
    fn clock(&mut self, now: Instant) {
        if let Some((at, busy)) = self.tick {
            let dt = now.duration_since(at).as_secs_f64();
            self.busy_row_s += busy as f64 * dt;
            self.capacity_row_s += self.rows as f64 * dt;
        }
        self.tick = Some((now, self.running));
    }
}

impl<L: Launch> GenerationObserver for Scorer<'_, L> {
    fn on_finished(&mut self, row: usize, sequence: &GeneratedSequence) {
        self.running = self.running.saturating_sub(1);
        if self.error.is_some() {
            return;
        }
        let task = self.draws[row / self.group_size].task.clone();
        match self.pool.submit(task, sequence.text.clone()) {
            Ok(id) => {
                self.pending.insert(id, row);
                telemetry().verifier_pending(self.pool.pending());
            }
            Err(e) => self.error = Some(e),
        }
    }

    fn keep_going(&mut self) -> bool {
        self.clock(Instant::now());
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

    fn admit(&mut self, request: usize) -> bool {
        let admitted = self.launch.admit(request, self.running, &self.grades);
        self.running += usize::from(admitted);
        admitted
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

/// The requests of `draws`, `group_size` per draw in draw order, each budget cut to the room the
/// model's context leaves after the prompt.
pub(crate) fn requests(
    model: &MimoModel,
    draws: &[Draw<'_>],
    config: &RoundConfig<'_>,
) -> Result<Vec<GenerationRequest>, RlError> {
    let context = model.config().max_position_embeddings;
    let mut requests = Vec::with_capacity(draws.len() * config.group_size);
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
        for j in 0..config.group_size {
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
    Ok(requests)
}

/// Ends a round decoded by either engine: waits for the grades of the kept groups (the prefix
/// the scorer stopped at, else every group), and returns them in draw order with the round's
/// costs. Groups after the prefix are discarded however far they got, so what is kept never
/// depends on timing.
pub(crate) fn finish_round<L: Launch>(
    mut scorer: Scorer<'_, L>,
    sequences: Vec<GeneratedSequence>,
    started: Instant,
) -> Result<(Vec<RolloutGroup>, RoundStats), RlError> {
    let generate = started.elapsed();
    scorer.clock(Instant::now());
    let g_size = scorer.group_size;
    let draws = scorer.draws;
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
    let decoded_tokens = sequences.iter().map(|s| s.token_ids.len()).sum();
    telemetry().tokens_generated(decoded_tokens);
    let wasted = &sequences[kept * g_size..];
    let wasted_tokens = wasted.iter().map(|s| s.token_ids.len()).sum();
    let wasted_samples = wasted.iter().filter(|s| !s.token_ids.is_empty()).count();
    let aborted_groups = wasted
        .chunks(g_size)
        .filter(|group| group.iter().any(|s| !s.token_ids.is_empty()))
        .count();
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
            aborted_groups,
            wasted_samples,
            wasted_tokens,
            decoded_tokens,
            generate,
            reward_wait,
            reward_cpu: scorer.reward_cpu,
            busy_row_s: scorer.busy_row_s,
            capacity_row_s: scorer.capacity_row_s,
        },
    ))
}

/// Naive dynamic sampling's round: generates `group_size` completions for every draw in one
/// lockstep batch, scores them in `pool` as they finish, and returns the complete groups in draw
/// order (all of them unless stopped early).
pub fn rollout_round(
    model: &MimoModel,
    tokenizer: &Tokenizer,
    pool: &mut VerifierPool,
    draws: &[Draw<'_>],
    config: &RoundConfig<'_>,
) -> Result<(Vec<RolloutGroup>, RoundStats), RlError> {
    let requests = requests(model, draws, config)?;
    let mut scorer = Scorer::new(pool, draws, config, requests.len(), requests.len(), ());
    let started = Instant::now();
    let sequences = generate_observed(model, tokenizer, &requests, &mut scorer)?;
    finish_round(scorer, sequences, started)
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
