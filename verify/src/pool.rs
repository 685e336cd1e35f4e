//! A bounded pool of judges that computes rewards while generation goes on.
//!
//! Why: MiMo's rollout engine computes rewards asynchronously, next to generation, so slow code
//! judging never stalls the GPU. The pool runs `judges` worker threads fed by a bounded queue
//! (submitting blocks when it is full — back-pressure instead of unbounded memory); results come
//! back in completion order, each with its id and its queue and run times.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::task::{Grade, GradeError, Grader, Task};

/// Errors of the pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("verifier pool is closed")]
    Closed,
    #[error("verifier pool needs at least one judge")]
    NoJudges,
}

/// A grade with its id and timing.
#[derive(Debug)]
pub struct TimedGrade {
    pub id: u64,
    pub grade: Result<Grade, GradeError>,
    /// Time spent waiting in the queue.
    pub queued: Duration,
    /// Time spent grading.
    pub ran: Duration,
}

struct Envelope {
    id: u64,
    task: Arc<Task>,
    completion: String,
    submitted: Instant,
}

/// The pool. Dropping it (or calling [`VerifierPool::finish`]) lets the workers drain and stop.
pub struct VerifierPool {
    jobs: Option<SyncSender<Envelope>>,
    results: Receiver<TimedGrade>,
    workers: Vec<JoinHandle<()>>,
    next_id: u64,
    /// Grades handed back so far (`next_id - returned` are still in the pool).
    returned: AtomicU64,
}

impl VerifierPool {
    /// Starts `judges` workers that grade with `grader`, with a queue of `queue` pending jobs.
    pub fn new(judges: usize, queue: usize, grader: Arc<Grader>) -> Result<Self, PoolError> {
        if judges == 0 {
            return Err(PoolError::NoJudges);
        }
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Envelope>(queue);
        let (results_tx, results) = mpsc::channel();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let workers = (0..judges)
            .map(|_| {
                let (rx, tx, grader) = (jobs_rx.clone(), results_tx.clone(), grader.clone());
                std::thread::spawn(move || {
                    loop {
                        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(Envelope {
                            id,
                            task,
                            completion,
                            submitted,
                        }) = next
                        else {
                            break;
                        };
                        let started = Instant::now();
                        let grade = grader.grade(&task, &completion);
                        let verdict = TimedGrade {
                            id,
                            grade,
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
            returned: AtomicU64::new(0),
        })
    }

    /// Queues `completion` of `task` for grading and returns its id; blocks while the queue is
    /// full.
    pub fn submit(&mut self, task: Arc<Task>, completion: String) -> Result<u64, PoolError> {
        let id = self.next_id;
        self.next_id += 1;
        let jobs = self.jobs.as_ref().ok_or(PoolError::Closed)?;
        jobs.send(Envelope {
            id,
            task,
            completion,
            submitted: Instant::now(),
        })
        .map_err(|_| PoolError::Closed)?;
        Ok(id)
    }

    /// A finished grade if one is ready.
    pub fn try_recv(&self) -> Option<TimedGrade> {
        let grade = self.results.try_recv().ok()?;
        self.returned.fetch_add(1, Ordering::Relaxed);
        Some(grade)
    }

    /// Waits up to `timeout` for the next finished grade.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<TimedGrade>, PoolError> {
        match self.results.recv_timeout(timeout) {
            Ok(v) => {
                self.returned.fetch_add(1, Ordering::Relaxed);
                Ok(Some(v))
            }
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(PoolError::Closed),
        }
    }

    /// Completions submitted whose grade has not been handed back yet: the backlog a caller
    /// watches to see whether judging keeps up with generation.
    pub fn pending(&self) -> u64 {
        self.next_id - self.returned.load(Ordering::Relaxed)
    }

    /// Stops taking jobs, waits for the queued ones, and returns their grades.
    pub fn finish(mut self) -> Vec<TimedGrade> {
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
    use crate::code::CodeProblem;
    use crate::math::MathConfig;
    use crucible_types::CodeReward;

    fn grader() -> Arc<Grader> {
        Arc::new(Grader::new(MathConfig::default(), None, CodeReward::Strict))
    }

    #[test]
    fn grades_come_back_with_ids_and_timing() {
        let mut pool = VerifierPool::new(2, 4, grader()).unwrap();
        let choice = Arc::new(Task::Choice {
            labels: vec!['A', 'B'],
            answer: 'B',
        });
        let mut want = std::collections::HashMap::new();
        for i in 0..20u64 {
            let (task, completion, correct) = if i % 2 == 0 {
                let task = Arc::new(Task::Math {
                    gold: format!("{i}"),
                });
                (task, format!("\\boxed{{{}}}", i + i % 4), i % 4 == 0)
            } else {
                (choice.clone(), "The answer is (B)".to_string(), true)
            };
            let id = pool.submit(task, completion).unwrap();
            want.insert(id, correct);
        }
        let mut got = Vec::new();
        while got.len() < 20 {
            if let Some(v) = pool.recv_timeout(Duration::from_secs(10)).unwrap() {
                got.push(v);
            }
        }
        for v in &got {
            assert_eq!(
                v.grade.as_ref().unwrap().correct,
                want[&v.id],
                "job {}",
                v.id
            );
        }
        assert!(pool.finish().is_empty());
    }

    #[test]
    fn code_without_judge_fails_cleanly_and_zero_judges_is_an_error() {
        assert!(matches!(
            VerifierPool::new(0, 1, grader()),
            Err(PoolError::NoJudges)
        ));
        let mut pool = VerifierPool::new(1, 1, grader()).unwrap();
        let task = Task::code(CodeProblem {
            id: "p".into(),
            tests: vec![],
            prelude: String::new(),
            tiers: None,
            reference_solution: None,
        })
        .unwrap();
        pool.submit(Arc::new(task), "print(1)".into()).unwrap();
        let v = pool.finish();
        assert!(matches!(&v[0].grade, Err(GradeError::NoJudge)));
    }
}
