//! A bounded pool of judges that computes rewards while generation goes on.
//!
//! Why: MiMo's rollout engine computes rewards asynchronously, next to generation, so slow code
//! judging never stalls the GPU. The pool runs `judges` worker threads fed by a bounded queue
//! (submitting blocks when it is full — back-pressure instead of unbounded memory); results come
//! back in completion order, each with its id and its queue and run times.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::choice::{ChoiceVerdict, verify_choice};
use super::code::{CodeProblem, CodeRewards, Judge, JudgeReport, Solution, TierLayout};
use super::math::{MathConfig, MathVerdict, verify};

/// Errors of the pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("verifier pool is closed")]
    Closed,
    #[error("verifier pool needs at least one judge")]
    NoJudges,
}

/// One thing to verify.
#[derive(Clone, Debug)]
pub enum VerifyJob {
    Math {
        gold: String,
        completion: String,
    },
    Choice {
        gold: char,
        completion: String,
        labels: Vec<char>,
    },
    /// The tier layout, if given, turns the per-test verdicts into rewards.
    Code {
        problem: Arc<CodeProblem>,
        solution: Solution,
        tiers: Option<Arc<TierLayout>>,
    },
}

/// The verdict of one job.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum VerifyOutcome {
    Math(MathVerdict),
    Choice(ChoiceVerdict),
    Code {
        report: JudgeReport,
        rewards: Option<CodeRewards>,
    },
    /// The judge itself failed (not the candidate): e.g. no Python in the sandbox.
    Failed(String),
}

/// A verdict with its id and timing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TimedVerdict {
    pub id: u64,
    pub outcome: VerifyOutcome,
    /// Time spent waiting in the queue.
    pub queued: Duration,
    /// Time spent verifying.
    pub ran: Duration,
}

struct Envelope {
    id: u64,
    job: VerifyJob,
    submitted: Instant,
}

/// The pool. Dropping it (or calling [`VerifierPool::finish`]) lets the workers drain and stop.
pub struct VerifierPool {
    jobs: Option<SyncSender<Envelope>>,
    results: Receiver<TimedVerdict>,
    workers: Vec<JoinHandle<()>>,
    next_id: u64,
}

fn run_job(job: VerifyJob, math: &MathConfig, judge: Option<&Judge>) -> VerifyOutcome {
    match job {
        VerifyJob::Math { gold, completion } => {
            VerifyOutcome::Math(verify(&gold, &completion, math))
        }
        VerifyJob::Choice {
            gold,
            completion,
            labels,
        } => VerifyOutcome::Choice(verify_choice(gold, &completion, &labels)),
        VerifyJob::Code {
            problem,
            solution,
            tiers,
        } => {
            let Some(judge) = judge else {
                return VerifyOutcome::Failed("this pool has no code judge".into());
            };
            match judge.judge(&problem, &solution) {
                Ok(report) => {
                    let rewards = tiers.map(|t| t.rewards(&report.passed()));
                    VerifyOutcome::Code { report, rewards }
                }
                Err(e) => VerifyOutcome::Failed(e.to_string()),
            }
        }
    }
}

impl VerifierPool {
    /// Starts `judges` workers with a queue of `queue` pending jobs; `judge` is needed for code jobs.
    pub fn new(
        judges: usize,
        queue: usize,
        math: MathConfig,
        judge: Option<Arc<Judge>>,
    ) -> Result<Self, PoolError> {
        if judges == 0 {
            return Err(PoolError::NoJudges);
        }
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Envelope>(queue);
        let (results_tx, results) = mpsc::channel();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let math = Arc::new(math);
        let workers = (0..judges)
            .map(|_| {
                let (rx, tx, math, judge) = (
                    jobs_rx.clone(),
                    results_tx.clone(),
                    math.clone(),
                    judge.clone(),
                );
                std::thread::spawn(move || {
                    loop {
                        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(Envelope { id, job, submitted }) = next else {
                            break;
                        };
                        let started = Instant::now();
                        let outcome = run_job(job, &math, judge.as_deref());
                        let verdict = TimedVerdict {
                            id,
                            outcome,
                            queued: started - submitted,
                            ran: started.elapsed(),
                        };
                        if tx.send(verdict).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        Ok(VerifierPool {
            jobs: Some(jobs_tx),
            results,
            workers,
            next_id: 0,
        })
    }

    /// Queues a job and returns its id; blocks while the queue is full.
    pub fn submit(&mut self, job: VerifyJob) -> Result<u64, PoolError> {
        let id = self.next_id;
        self.next_id += 1;
        let jobs = self.jobs.as_ref().ok_or(PoolError::Closed)?;
        jobs.send(Envelope {
            id,
            job,
            submitted: Instant::now(),
        })
        .map_err(|_| PoolError::Closed)?;
        Ok(id)
    }

    /// A finished verdict if one is ready.
    pub fn try_recv(&self) -> Option<TimedVerdict> {
        self.results.try_recv().ok()
    }

    /// Waits up to `timeout` for the next finished verdict.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<TimedVerdict>, PoolError> {
        match self.results.recv_timeout(timeout) {
            Ok(v) => Ok(Some(v)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(PoolError::Closed),
        }
    }

    /// Stops taking jobs, waits for the queued ones, and returns their verdicts.
    pub fn finish(mut self) -> Vec<TimedVerdict> {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        self.results.try_iter().collect()
    }
}

impl Drop for VerifierPool {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn math_and_choice_jobs_come_back_with_ids_and_timing() {
        let mut pool = VerifierPool::new(2, 4, MathConfig::default(), None).unwrap();
        let mut want = std::collections::HashMap::new();
        for i in 0..20u64 {
            let (job, correct) = if i % 2 == 0 {
                (
                    VerifyJob::Math {
                        gold: format!("{i}"),
                        completion: format!("\\boxed{{{}}}", i + i % 4),
                    },
                    i % 4 == 0,
                )
            } else {
                (
                    VerifyJob::Choice {
                        gold: 'B',
                        completion: "The answer is (B)".into(),
                        labels: vec!['A', 'B'],
                    },
                    true,
                )
            };
            let id = pool.submit(job).unwrap();
            want.insert(id, correct);
        }
        let mut got = Vec::new();
        while got.len() < 20 {
            if let Some(v) = pool.recv_timeout(Duration::from_secs(10)).unwrap() {
                got.push(v);
            }
        }
        for v in &got {
            let correct = match &v.outcome {
                VerifyOutcome::Math(m) => m.correct,
                VerifyOutcome::Choice(c) => c.correct,
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(correct, want[&v.id], "job {}", v.id);
        }
        assert!(pool.finish().is_empty());
    }

    #[test]
    fn code_job_without_judge_fails_cleanly_and_zero_judges_is_an_error() {
        assert!(matches!(
            VerifierPool::new(0, 1, MathConfig::default(), None),
            Err(PoolError::NoJudges)
        ));
        let mut pool = VerifierPool::new(1, 1, MathConfig::default(), None).unwrap();
        let problem = Arc::new(CodeProblem {
            id: "p".into(),
            tests: vec![],
            prelude: String::new(),
            tiers: None,
            reference_solution: None,
        });
        let solution = Solution::from_completion("print(1)");
        pool.submit(VerifyJob::Code {
            problem,
            solution,
            tiers: None,
        })
        .unwrap();
        let v = pool.finish();
        assert!(matches!(&v[0].outcome, VerifyOutcome::Failed(_)));
    }
}
