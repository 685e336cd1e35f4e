//! One grading path: a [`Task`] says what is asked and how it is graded, [`Grader::grade`] turns a
//! completion of it into a [`Grade`]. The eval harness and the RL rollout engine both grade
//! through here (usually inside the [`VerifierPool`](crate::pool::VerifierPool)), so an eval score
//! and an RL reward can never disagree about the same completion.

use std::sync::Arc;

use crucible_types::CodeReward;

use crate::choice::verify_choice;
use crate::code::tiers::TierError;
use crate::code::{CodeProblem, Judge, JudgeError, Solution, TierLayout, Verdict, pass_fraction};
use crate::math::{MathConfig, answers_equivalent, verify};
use crate::text::{extract_short_answer, normalize_text};

/// What is asked, and how a completion of it is graded.
#[derive(Clone, Debug, PartialEq)]
pub enum Task {
    /// A free-form math answer, compared by [`crate::math::verify`].
    Math { gold: String },
    /// A lettered option, extracted by [`crate::choice::extract_choice`].
    Choice { labels: Vec<char>, answer: char },
    /// A short answer compared as text, case- and space-insensitively (BBH's free-form tasks:
    /// `True`, `valid`, `] ) }`, a sorted word list), where math normalisation would mangle it.
    Exact { gold: String },
    /// A program judged in the sandbox on the problem's tests; the tier layout (built once, from
    /// the problem's labels) turns per-test verdicts into MiMo's difficulty-driven reward.
    Code {
        problem: Arc<CodeProblem>,
        tiers: Option<Arc<TierLayout>>,
    },
}

impl Task {
    /// A code task, its tier layout checked and built once.
    pub fn code(problem: CodeProblem) -> Result<Task, TierError> {
        if let Some(labels) = &problem.tiers
            && labels.len() != problem.tests.len()
        {
            return Err(TierError::LabelCount {
                labels: labels.len(),
                tests: problem.tests.len(),
            });
        }
        let tiers = problem
            .tiers
            .as_deref()
            .map(TierLayout::from_labels)
            .transpose()?
            .map(Arc::new);
        Ok(Task::Code {
            problem: Arc::new(problem),
            tiers,
        })
    }

    /// Whether grading needs the sandboxed code judge.
    pub fn needs_judge(&self) -> bool {
        matches!(self, Task::Code { .. })
    }

    /// Whether a rule-based reward exists for RL (free-text answers have none).
    pub fn has_reward(&self) -> bool {
        !matches!(self, Task::Exact { .. })
    }
}

/// The grade of one completion: what the sample browser shows and what the objective sees.
#[derive(Clone, Debug, PartialEq)]
pub struct Grade {
    /// `correct` / `wrong` / `no_answer`; for code `passed` or the first failing test's verdict
    /// (`wrong_answer`, `runtime_error`, `time_limit` …); `judge_failed: …` when the judge itself
    /// failed (not the program), so an infrastructure fault is visible where the sample is shown.
    pub verdict: String,
    /// The answer as the completion wrote it (none for code).
    pub extracted: Option<String>,
    /// Solved outright: the right answer, or every test passed.
    pub correct: bool,
    /// 1/0; for code the tier reward under the grader's [`CodeReward`] rule when the task has
    /// tiers, else the fraction of tests passed.
    pub reward: f64,
    /// The answer in the form majority voting compares; `None` for no answer and for code.
    pub vote: Option<String>,
    /// Tests passed and run, for code.
    pub tests: Option<(usize, usize)>,
}

impl Grade {
    /// The grade of a completion the judge could not run: reward 0, the reason in the verdict.
    pub fn judge_failed(why: &GradeError) -> Grade {
        Grade {
            verdict: format!("judge_failed: {why}"),
            extracted: None,
            correct: false,
            reward: 0.0,
            vote: None,
            tests: None,
        }
    }

    /// The grade of an answer-extracting verifier: `correct`, `wrong` or `no_answer`.
    fn answered(correct: bool, extracted: Option<String>, vote: Option<String>) -> Grade {
        let verdict = match (&extracted, correct) {
            (_, true) => "correct",
            (None, false) => "no_answer",
            (Some(_), false) => "wrong",
        };
        Grade {
            verdict: verdict.to_string(),
            extracted,
            correct,
            reward: if correct { 1.0 } else { 0.0 },
            vote,
            tests: None,
        }
    }
}

/// Why a completion could not be graded (the grader's fault, never the completion's).
#[derive(Debug, thiserror::Error)]
pub enum GradeError {
    /// A code task reached a grader built without a code judge.
    #[error("code task graded without a code judge")]
    NoJudge,
    /// The judge could not run the program (no sandboxed interpreter, sandbox failure …).
    #[error(transparent)]
    Judge(#[from] JudgeError),
}

/// Grades completions of tasks; holds the code judge when some task needs one.
pub struct Grader {
    math: MathConfig,
    judge: Option<Judge>,
    code_reward: CodeReward,
}

impl Grader {
    /// A grader; `judge` is needed for code tasks, `code_reward` picks MiMo's strict or soft tier
    /// rule for code tasks with tiers.
    pub fn new(math: MathConfig, judge: Option<Judge>, code_reward: CodeReward) -> Grader {
        Grader {
            math,
            judge,
            code_reward,
        }
    }

    /// Grades `completion` as an answer to `task`.
    pub fn grade(&self, task: &Task, completion: &str) -> Result<Grade, GradeError> {
        Ok(match task {
            Task::Math { gold } => {
                let v = verify(gold, completion, &self.math);
                Grade::answered(v.correct, v.extracted, v.answer_normalized)
            }
            Task::Choice { labels, answer } => {
                let v = verify_choice(*answer, completion, labels);
                let letter = v.extracted.map(String::from);
                Grade::answered(v.correct, letter.clone(), letter)
            }
            Task::Exact { gold } => {
                let extracted = extract_short_answer(completion);
                let vote = extracted.as_deref().map(normalize_text);
                let correct = vote.as_deref() == Some(normalize_text(gold).as_str());
                Grade::answered(correct, extracted, vote)
            }
            Task::Code { problem, tiers } => {
                let judge = self.judge.as_ref().ok_or(GradeError::NoJudge)?;
                let report = judge.judge(problem, &Solution::from_completion(completion))?;
                let passed = report.passed();
                let failing = report
                    .tests
                    .iter()
                    .map(|t| t.verdict)
                    .find(|v| *v != Verdict::Passed);
                let reward = match tiers {
                    Some(layout) => {
                        let r = layout.rewards(&passed);
                        match self.code_reward {
                            CodeReward::Strict => r.strict,
                            CodeReward::Soft => r.soft,
                        }
                    }
                    None => pass_fraction(&passed),
                };
                Grade {
                    verdict: failing.map_or_else(|| "passed".to_string(), verdict_name),
                    extracted: None,
                    correct: failing.is_none() && !passed.is_empty(),
                    reward,
                    vote: None,
                    tests: Some((passed.iter().filter(|p| **p).count(), passed.len())),
                }
            }
        })
    }

    /// Whether two votes on `task` are the same answer (math: equivalent values).
    pub fn same_answer(&self, task: &Task, a: &str, b: &str) -> bool {
        match task {
            Task::Math { .. } => a == b || answers_equivalent(a, b, &self.math),
            _ => a == b,
        }
    }
}

/// The judge's snake_case name of a verdict (`wrong_answer` …).
fn verdict_name(v: Verdict) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::SandboxConfig;

    fn grader() -> Grader {
        Grader::new(MathConfig::default(), None, CodeReward::Strict)
    }

    #[test]
    fn math_choice_and_exact_verdicts() {
        let g = grader();
        let math = Task::Math { gold: "18".into() };
        let r = g.grade(&math, "so \\boxed{18}").unwrap();
        assert_eq!(
            (r.verdict.as_str(), r.correct, r.reward),
            ("correct", true, 1.0)
        );
        assert_eq!(g.grade(&math, "\\boxed{17}").unwrap().verdict, "wrong");
        let none = g.grade(&math, "").unwrap();
        assert_eq!((none.verdict.as_str(), none.reward), ("no_answer", 0.0));
        assert!(g.same_answer(&math, "1/2", "0.5"));
        let choice = Task::Choice {
            labels: vec!['A', 'B', 'C'],
            answer: 'B',
        };
        let r = g.grade(&choice, "The answer is (B).").unwrap();
        assert_eq!((r.extracted.as_deref(), r.correct), (Some("B"), true));
        let exact = Task::Exact {
            gold: "] ) }".into(),
        };
        assert!(g.grade(&exact, "So the answer is ] ) }.").unwrap().correct);
        let yes = Task::Exact { gold: "Yes".into() };
        assert!(g.grade(&yes, "\\boxed{\\text{yes}}").unwrap().correct);
        assert!(!g.grade(&yes, "The answer is No.").unwrap().correct);
    }

    #[test]
    fn code_without_a_judge_is_an_error_whose_grade_says_so() {
        let problem = CodeProblem::from_json(&serde_json::json!(
            {"id": "x", "tests": [{"input": "1", "output": "1"}]}
        ))
        .unwrap();
        let task = Task::code(problem).unwrap();
        assert!(task.needs_judge());
        let err = grader().grade(&task, "print(1)").unwrap_err();
        assert!(matches!(err, GradeError::NoJudge));
        let failed = Grade::judge_failed(&err);
        assert_eq!(failed.reward, 0.0);
        assert!(failed.verdict.starts_with("judge_failed: "), "{failed:?}");
    }

    #[test]
    fn bad_tier_labels_are_refused_when_the_task_is_built() {
        let mut problem = CodeProblem::from_json(&serde_json::json!({
            "id": "x",
            "tests": [{"input": "1", "output": "1"}, {"input": "2", "output": "2"}],
            "tiers": [0, 1]
        }))
        .unwrap();
        assert!(Task::code(problem.clone()).is_ok());
        // Parsing refuses a label count that does not match; a problem built in code is checked too.
        problem.tiers = Some(vec![0, 1, 1]);
        assert_eq!(
            Task::code(problem).unwrap_err(),
            TierError::LabelCount {
                labels: 3,
                tests: 2
            }
        );
    }

    /// The tier rule of the grader decides a tiered code reward: tests 0, 1 easy and test 2
    /// hard, the program passes 0 and 2 only.
    #[test]
    fn code_rewards_follow_the_configured_tier_rule() {
        let judge = Judge::new(SandboxConfig::default()).unwrap();
        let problem = CodeProblem::from_json(&serde_json::json!({
            "id": "echo",
            "tests": [
                {"input": "1", "output": "1"},
                {"input": "2", "output": "2"},
                {"input": "3", "output": "3"}
            ],
            "tiers": [0, 0, 1]
        }))
        .unwrap();
        let task = Task::code(problem).unwrap();
        let program = "x = input()\nprint(x if x != '2' else 'no')";
        let strict = Grader::new(MathConfig::default(), Some(judge), CodeReward::Strict);
        let g = strict.grade(&task, program).unwrap();
        // Strict: the easy tier is not fully passed, so nothing pays.
        assert_eq!(
            (g.reward, g.correct, g.verdict.as_str(), g.tests),
            (0.0, false, "wrong_answer", Some((2, 3)))
        );
        let soft = Grader::new(
            MathConfig::default(),
            Some(Judge::new(SandboxConfig::default()).unwrap()),
            CodeReward::Soft,
        );
        // Soft: 1 of 2 easy tests (0.5 × 0.5) plus the whole hard tier (0.5).
        let g = soft.grade(&task, program).unwrap();
        assert!((g.reward - 0.75).abs() < 1e-9, "{g:?}");
    }
}
