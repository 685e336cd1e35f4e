//! Rewards of RL rollouts, from the same verifiers the eval harness uses: math answer equivalence,
//! choice extraction, and the sandboxed code judge with MiMo's strict or soft test-difficulty
//! tiers. Jobs go to the [`VerifierPool`](crate::reward::pool::VerifierPool), so rollouts are
//! scored while generation goes on.

use std::sync::Arc;

use crucible_types::CodeReward;

use super::RlError;
use crate::eval::ProblemKind;
use crate::eval::grade::{answered, verdict_name};
use crate::reward::code::{Solution, TierLayout, Verdict, pass_fraction};
use crate::reward::pool::{VerifyJob, VerifyOutcome};

/// A rollout's score: the reward the objective sees, and what the rollout browser shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub reward: f32,
    /// Solved outright (every test passed, the right answer).
    pub correct: bool,
    /// `correct` / `wrong` / `no_answer`, `passed` or a code verdict, or `judge_failed: …`.
    pub verdict: String,
}

/// A problem prepared for the pool: code problems are shared, and their tier layout built once.
#[derive(Debug, Clone)]
pub enum Verifiable {
    Math {
        gold: String,
    },
    Choice {
        labels: Vec<char>,
        answer: char,
    },
    Code {
        problem: Arc<crate::reward::code::CodeProblem>,
        tiers: Option<Arc<TierLayout>>,
    },
}

impl Verifiable {
    /// Prepares `kind`; free-text (`exact`) problems have no rule-based RL reward and are refused.
    pub fn new(kind: &ProblemKind, id: &str) -> Result<Self, RlError> {
        Ok(match kind {
            ProblemKind::Math { gold } => Verifiable::Math { gold: gold.clone() },
            ProblemKind::Choice { labels, answer } => Verifiable::Choice {
                labels: labels.clone(),
                answer: *answer,
            },
            ProblemKind::Code { problem } => {
                let tiers = match problem.tiers.as_deref() {
                    Some(labels) => {
                        Some(Arc::new(TierLayout::from_labels(labels).map_err(|e| {
                            RlError::Input {
                                name: "problems",
                                reason: format!("{id}: {e}"),
                            }
                        })?))
                    }
                    None => None,
                };
                Verifiable::Code {
                    problem: Arc::new((**problem).clone()),
                    tiers,
                }
            }
            ProblemKind::Exact { .. } => {
                return Err(RlError::Input {
                    name: "problems",
                    reason: format!("{id}: free-text answers have no RL verifier"),
                });
            }
        })
    }

    /// Whether scoring needs the sandboxed code judge.
    pub fn is_code(&self) -> bool {
        matches!(self, Verifiable::Code { .. })
    }

    /// The pool job that scores `completion`.
    pub fn job(&self, completion: &str) -> VerifyJob {
        match self {
            Verifiable::Math { gold } => VerifyJob::Math {
                gold: gold.clone(),
                completion: completion.to_string(),
            },
            Verifiable::Choice { labels, answer } => VerifyJob::Choice {
                gold: *answer,
                completion: completion.to_string(),
                labels: labels.clone(),
            },
            Verifiable::Code { problem, tiers } => VerifyJob::Code {
                problem: problem.clone(),
                solution: Solution::from_completion(completion),
                tiers: tiers.clone(),
            },
        }
    }
}

/// The reward and verdict of a pool outcome. A judge that failed (not the program) scores 0 and
/// says so in the verdict, so an infrastructure fault is visible in the rollout browser.
pub fn score(outcome: &VerifyOutcome, code_reward: CodeReward) -> Score {
    let binary = |correct: bool, extracted: Option<String>| {
        let graded = answered(correct, extracted, None);
        Score {
            reward: if correct { 1.0 } else { 0.0 },
            correct,
            verdict: graded.verdict,
        }
    };
    match outcome {
        VerifyOutcome::Math(v) => binary(v.correct, v.extracted.clone()),
        VerifyOutcome::Choice(v) => binary(v.correct, v.extracted.map(String::from)),
        VerifyOutcome::Code { report, rewards } => {
            let passed = report.passed();
            let failing = report
                .tests
                .iter()
                .map(|t| t.verdict)
                .find(|v| *v != Verdict::Passed);
            let reward = match (rewards, code_reward) {
                (Some(r), CodeReward::Strict) => r.strict,
                (Some(r), CodeReward::Soft) => r.soft,
                (None, _) => pass_fraction(&passed),
            };
            Score {
                reward: reward as f32,
                correct: failing.is_none() && !passed.is_empty(),
                verdict: failing.map_or_else(|| "passed".to_string(), verdict_name),
            }
        }
        VerifyOutcome::Failed(why) => Score {
            reward: 0.0,
            correct: false,
            verdict: format!("judge_failed: {why}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::math::{MathConfig, verify};

    #[test]
    fn math_rewards_are_binary_with_eval_verdicts() {
        let v = Verifiable::new(&ProblemKind::Math { gold: "12".into() }, "p").unwrap();
        let run = |text: &str| {
            let VerifyJob::Math { gold, completion } = v.job(text) else {
                panic!("math job expected");
            };
            score(
                &VerifyOutcome::Math(verify(&gold, &completion, &MathConfig::default())),
                CodeReward::Strict,
            )
        };
        assert_eq!(
            run("3 * 4 = 12.\nThe answer is \\boxed{12}."),
            Score {
                reward: 1.0,
                correct: true,
                verdict: "correct".into()
            }
        );
        assert_eq!(run("\\boxed{13}").verdict, "wrong");
        assert_eq!(run("no box").reward, 0.0);
        let failed = score(&VerifyOutcome::Failed("no python".into()), CodeReward::Soft);
        assert_eq!(
            (failed.reward, failed.verdict.as_str()),
            (0.0, "judge_failed: no python")
        );
    }

    #[test]
    fn code_rewards_follow_the_configured_tier_rule() {
        use crate::reward::code::{JudgeReport, TestResult};
        use std::time::Duration;
        // Tiers: tests 0,1 easy, test 2 hard; the program passes 0 and 2 only.
        let layout = TierLayout::from_labels(&[0, 0, 1]).unwrap();
        let passed = [true, false, true];
        let report = JudgeReport {
            tests: passed
                .iter()
                .map(|&p| TestResult {
                    verdict: if p {
                        Verdict::Passed
                    } else {
                        Verdict::WrongAnswer
                    },
                    wall: Duration::ZERO,
                    stderr_tail: String::new(),
                })
                .collect(),
            compile_output: None,
            wall: Duration::ZERO,
        };
        let outcome = VerifyOutcome::Code {
            rewards: Some(layout.rewards(&passed)),
            report: report.clone(),
        };
        let strict = score(&outcome, CodeReward::Strict);
        let soft = score(&outcome, CodeReward::Soft);
        // Strict: the easy tier is not fully passed, so nothing pays. Soft: 1 of 2 easy tests
        // (0.5 × 0.5) plus the whole hard tier (0.5).
        assert_eq!(strict.reward, 0.0);
        assert!((soft.reward - 0.75).abs() < 1e-6, "{soft:?}");
        assert_eq!(
            (strict.correct, strict.verdict.as_str()),
            (false, "wrong_answer")
        );
        let untiered = VerifyOutcome::Code {
            report,
            rewards: None,
        };
        assert!((score(&untiered, CodeReward::Strict).reward - 2.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn exact_problems_are_refused() {
        let err = Verifiable::new(&ProblemKind::Exact { gold: "yes".into() }, "bbh-1").unwrap_err();
        assert!(err.to_string().contains("bbh-1"), "{err}");
    }
}
