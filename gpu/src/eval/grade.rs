//! Grading one completion of one problem with the verifiers of [`crate::reward`].
//!
//! Why the verdict is a string: it is stored with every sample and shown in the sample browser;
//! math and choice give `correct` / `wrong` / `no_answer`, code gives `passed` or the first
//! failing test's verdict (`wrong_answer`, `runtime_error`, `time_limit` …).

use std::sync::LazyLock;

use regex::Regex;

use super::EvalError;
use super::benchmark::ProblemKind;
use crate::reward::choice::verify_choice;
use crate::reward::code::{Judge, SandboxConfig, Solution, TierLayout, Verdict, pass_fraction};
use crate::reward::math::{MathConfig, answers_equivalent, last_boxed, verify};

/// The grade of one sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Graded {
    pub verdict: String,
    /// The answer as the completion wrote it (none for code).
    pub extracted: Option<String>,
    pub correct: bool,
    /// 1/0, or for code the tier reward (strict) when the problem has tiers, else the pass fraction.
    pub reward: f64,
    /// The answer in the form majority voting compares; `None` for no answer and for code.
    pub vote: Option<String>,
}

/// Grades completions; holds the code judge when the benchmark needs one.
pub struct Grader {
    math: MathConfig,
    judge: Option<Judge>,
}

impl Grader {
    /// A grader; `with_code` starts the code judge (fails when no sandboxed Python exists).
    pub fn new(with_code: bool) -> Result<Grader, EvalError> {
        let judge = if with_code {
            Some(Judge::new(SandboxConfig::default())?)
        } else {
            None
        };
        Ok(Grader {
            math: MathConfig::default(),
            judge,
        })
    }

    /// Grades `completion` as an answer to a problem of `kind`.
    pub fn grade(&self, kind: &ProblemKind, completion: &str) -> Result<Graded, EvalError> {
        Ok(match kind {
            ProblemKind::Math { gold } => {
                let v = verify(gold, completion, &self.math);
                answered(v.correct, v.extracted, v.answer_normalized)
            }
            ProblemKind::Choice { labels, answer } => {
                let v = verify_choice(*answer, completion, labels);
                let letter = v.extracted.map(String::from);
                answered(v.correct, letter.clone(), letter)
            }
            ProblemKind::Exact { gold } => {
                let extracted = extract_short_answer(completion);
                let vote = extracted.as_deref().map(normalize_text);
                let correct = vote.as_deref() == Some(normalize_text(gold).as_str());
                answered(correct, extracted, vote)
            }
            ProblemKind::Code { problem } => {
                let judge = self.judge.as_ref().ok_or_else(|| {
                    EvalError::InvalidArgs("code problem graded without a judge".into())
                })?;
                let report = judge.judge(problem, &Solution::from_completion(completion))?;
                let passed = report.passed();
                let failing = report
                    .tests
                    .iter()
                    .map(|t| t.verdict)
                    .find(|v| *v != Verdict::Passed);
                let reward = match problem.tiers.as_deref().map(TierLayout::from_labels) {
                    Some(Ok(layout)) => layout.strict(&passed),
                    _ => pass_fraction(&passed),
                };
                Graded {
                    verdict: failing.map_or_else(|| "passed".to_string(), verdict_name),
                    extracted: None,
                    correct: failing.is_none() && !passed.is_empty(),
                    reward,
                    vote: None,
                }
            }
        })
    }

    /// Whether two votes on a problem of `kind` are the same answer (math: equivalent values).
    pub fn same_answer(&self, kind: &ProblemKind, a: &str, b: &str) -> bool {
        match kind {
            ProblemKind::Math { .. } => a == b || answers_equivalent(a, b, &self.math),
            _ => a == b,
        }
    }
}

/// The verdict string of an answer-extracting verifier: `correct`, `wrong` or `no_answer`.
pub(crate) fn answered(correct: bool, extracted: Option<String>, vote: Option<String>) -> Graded {
    let verdict = match (&extracted, correct) {
        (_, true) => "correct",
        (None, false) => "no_answer",
        (Some(_), false) => "wrong",
    };
    Graded {
        verdict: verdict.to_string(),
        extracted,
        correct,
        reward: if correct { 1.0 } else { 0.0 },
        vote,
    }
}

/// The judge's snake_case name of a verdict (`wrong_answer` …).
pub(crate) fn verdict_name(v: Verdict) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{v:?}"))
}

/// "the answer is X" (last occurrence), up to the end of its sentence or line.
static ANSWER_IS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)answer\s*(?:is|:)\s*(.+?)\s*(?:\.\s|\.$|\n|$)").expect("static regex")
});

/// A short free-form answer: the last `\boxed{}`, else the last "the answer is …", else the
/// last non-empty line.
fn extract_short_answer(text: &str) -> Option<String> {
    if let Some(b) = last_boxed(text) {
        return Some(b.to_string());
    }
    if let Some(c) = ANSWER_IS.captures_iter(text).last() {
        return Some(c[1].to_string());
    }
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_string)
}

/// Lower case, `\text{…}` and markdown emphasis removed, spaces collapsed, trailing period off.
fn normalize_text(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("\\text{")
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(s);
    let s = s.trim_matches(|c: char| c == '*' || c == '`' || c.is_whitespace());
    let s = s.strip_suffix('.').unwrap_or(s);
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn math_choice_and_exact_verdicts() {
        let g = Grader::new(false).unwrap();
        let math = ProblemKind::Math { gold: "18".into() };
        let r = g.grade(&math, "so \\boxed{18}").unwrap();
        assert_eq!(
            (r.verdict.as_str(), r.correct, r.reward),
            ("correct", true, 1.0)
        );
        assert_eq!(g.grade(&math, "\\boxed{17}").unwrap().verdict, "wrong");
        assert_eq!(g.grade(&math, "").unwrap().verdict, "no_answer");
        assert!(g.same_answer(&math, "1/2", "0.5"));
        let choice = ProblemKind::Choice {
            labels: vec!['A', 'B', 'C'],
            answer: 'B',
        };
        let r = g.grade(&choice, "The answer is (B).").unwrap();
        assert_eq!((r.extracted.as_deref(), r.correct), (Some("B"), true));
        let exact = ProblemKind::Exact {
            gold: "] ) }".into(),
        };
        assert!(g.grade(&exact, "So the answer is ] ) }.").unwrap().correct);
        let yes = ProblemKind::Exact { gold: "Yes".into() };
        assert!(g.grade(&yes, "\\boxed{\\text{yes}}").unwrap().correct);
        assert!(!g.grade(&yes, "The answer is No.").unwrap().correct);
    }

    #[test]
    fn code_without_a_judge_is_an_error_not_a_verdict() {
        let g = Grader::new(false).unwrap();
        let problem = crate::reward::code::CodeProblem::from_json(&serde_json::json!(
            {"id": "x", "tests": [{"input": "1", "output": "1"}]}
        ))
        .unwrap();
        let kind = ProblemKind::Code {
            problem: Box::new(problem),
        };
        assert!(matches!(
            g.grade(&kind, "print(1)"),
            Err(EvalError::InvalidArgs(_))
        ));
    }
}
