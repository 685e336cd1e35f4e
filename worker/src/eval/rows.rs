//! Reading one JSON row (a line of a benchmark file or an imported dataset row) into a problem.
//!
//! Why one reader for files and imports: a dataset imported through the server in the same shape
//! as a public benchmark must be prompted and graded exactly like it.

use crucible_types::dataset::DatasetKind;
use serde_json::{Value, json};

use super::EvalError;
use super::benchmark::{Benchmark, Problem};
use super::prompts;
use crucible_verify::Task;
use crucible_verify::code::CodeProblem;

/// Where a row came from, for error messages (`gsm8k/test.jsonl row 12: …`).
pub(crate) struct RowRef<'a> {
    pub source: &'a str,
    /// 0-based; messages print it 1-based (the line number of a JSONL file).
    pub index: usize,
}

impl RowRef<'_> {
    pub(crate) fn error(&self, message: impl Into<String>) -> EvalError {
        EvalError::BadRow {
            source_name: self.source.to_string(),
            row: self.index + 1,
            message: message.into(),
        }
    }
}

impl Benchmark {
    /// A benchmark from imported dataset rows (`crucible dataset import`), in the JSONL shapes the
    /// server accepts: math `problem`/`answer`; code `prompt|problem|question|text` +
    /// `tests|test|test_list`; choice `question`/`choices`/`answer`/optional `labels`.
    pub fn from_rows(
        name: &str,
        kind: DatasetKind,
        rows: &[Value],
    ) -> Result<Benchmark, EvalError> {
        let problems = rows
            .iter()
            .enumerate()
            .map(|(i, row)| problem_from_row(name, kind, i, row))
            .collect::<Result<_, _>>()?;
        Ok(Benchmark::from_problems(name, problems))
    }
}

/// A problem from a dataset row of the given kind.
pub(crate) fn problem_from_row(
    source: &str,
    kind: DatasetKind,
    index: usize,
    row: &Value,
) -> Result<Problem, EvalError> {
    let at = RowRef { source, index };
    match kind {
        DatasetKind::Math => math_row(&at, row),
        DatasetKind::Choice => choice_row(&at, row),
        DatasetKind::Code => code_row(&at, row),
        DatasetKind::Text => Err(at.error("text datasets have no answers to grade")),
    }
}

/// The row's `id` (or `task_id`), else `<source>-<index>`.
pub(crate) fn row_id(at: &RowRef, row: &Value) -> String {
    match row.get("id").or_else(|| row.get("task_id")) {
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Number(_)) => v.to_string(),
        _ => format!("{}-{}", at.source, at.index),
    }
}

fn text_field<'a>(at: &RowRef, row: &'a Value, names: &[&str]) -> Result<&'a str, EvalError> {
    names
        .iter()
        .find_map(|n| row.get(*n).and_then(Value::as_str))
        .ok_or_else(|| at.error(format!("missing text field `{}`", names.join("|"))))
}

/// A string, or a number written as a string (`"answer": 18`).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `problem` + `answer`.
pub(crate) fn math_row(at: &RowRef, row: &Value) -> Result<Problem, EvalError> {
    let problem = text_field(at, row, &["problem"])?;
    let gold = row
        .get("answer")
        .and_then(scalar_text)
        .ok_or_else(|| at.error("missing field `answer` (string or number)"))?;
    Ok(Problem {
        id: row_id(at, row),
        prompt: prompts::math(problem),
        task: Task::Math { gold },
    })
}

fn single_char(s: &str) -> Option<char> {
    let t = s.trim().trim_matches(|c| c == '(' || c == ')');
    let mut chars = t.chars();
    let c = chars.next()?;
    chars.next().is_none().then_some(c)
}

/// `question` + `choices` (list, or `{label: text}`) + `answer` (a label or an index) +
/// optional `labels` (A, B, C … by default).
pub(crate) fn choice_row(at: &RowRef, row: &Value) -> Result<Problem, EvalError> {
    let question = text_field(at, row, &["question"])?;
    let bad_choices =
        || at.error("field `choices` must be a list of strings or a {label: text} map");
    let (mut labels, choices): (Vec<char>, Vec<String>) = match row.get("choices") {
        Some(Value::Array(items)) => {
            let texts = items
                .iter()
                .map(|c| c.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad_choices)?;
            let labels = ('A'..='Z').take(texts.len()).collect();
            (labels, texts)
        }
        Some(Value::Object(map)) => {
            let mut pairs = map
                .iter()
                .map(|(k, v)| Some((single_char(k)?, v.as_str()?.to_string())))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad_choices)?;
            pairs.sort_by_key(|(l, _)| *l);
            pairs.into_iter().unzip()
        }
        _ => return Err(bad_choices()),
    };
    if choices.len() < 2 || choices.len() > 26 {
        return Err(at.error(format!(
            "field `choices` has {} options; expected 2 to 26",
            choices.len()
        )));
    }
    if let Some(given) = row.get("labels") {
        let given: Vec<char> = given
            .as_array()
            .and_then(|a| a.iter().map(|l| l.as_str().and_then(single_char)).collect())
            .ok_or_else(|| at.error("field `labels` must be a list of single letters"))?;
        if given.len() != choices.len() {
            return Err(at.error(format!(
                "field `labels` has {} entries for {} choices",
                given.len(),
                choices.len()
            )));
        }
        labels = given;
    }
    let answer = match row.get("answer") {
        Some(Value::String(s)) => single_char(s),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|i| labels.get(usize::try_from(i).ok()?).copied()),
        _ => None,
    }
    .filter(|a| labels.contains(a))
    .ok_or_else(|| {
        at.error(format!(
            "field `answer` must be one of the labels {labels:?} or an index into them"
        ))
    })?;
    Ok(Problem {
        id: row_id(at, row),
        prompt: prompts::choice(question, &labels, &choices),
        task: Task::Choice { labels, answer },
    })
}

/// HumanEval (`prompt` stub + `test` + `entry_point`), MBPP (`text` + `test_list`), code_rl
/// (`problem` + `tests` + `test_type`), or a statement plus `tests` in the reward module's form.
pub(crate) fn code_row(at: &RowRef, row: &Value) -> Result<Problem, EvalError> {
    let id = row_id(at, row);
    let judged = |v: &Value| CodeProblem::from_json(v).map_err(|e| at.error(e.to_string()));
    let (prompt, problem) = if row.get("entry_point").is_some() {
        let stub = text_field(at, row, &["prompt"])?;
        let mut problem = judged(row)?;
        // The stub (imports, signature, docstring) runs first, so a reply that is only the body,
        // HumanEval's own convention, completes it, and a whole function redefines it.
        problem.prelude = format!("{}{stub}\n", problem.prelude);
        (prompts::complete_function(stub), problem)
    } else if let Some(list) = row.get("test_list").and_then(Value::as_array) {
        let task = text_field(at, row, &["text", "prompt", "problem", "question"])?;
        let shown: Vec<String> = list
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        (prompts::with_example_tests(task, &shown), judged(row)?)
    } else {
        let statement = text_field(at, row, &["prompt", "problem", "question", "text"])?;
        let tests = row.get("tests").or_else(|| row.get("test"));
        let problem = match tests {
            // A bare `check(candidate)`-style script: LeetCode's functional form.
            Some(Value::String(code)) if row.get("test_type").is_none() => {
                judged(&json!({"id": id, "test_type": "functional", "tests": code}))?
            }
            Some(_) => {
                let mut v = row.clone();
                if let (Some(obj), Some(t)) = (v.as_object_mut(), tests) {
                    obj.insert("tests".into(), t.clone());
                }
                judged(&v)?
            }
            None => return Err(at.error("missing field `tests|test|test_list`")),
        };
        (prompts::program(statement, &problem), problem)
    };
    if problem.tests.is_empty() {
        return Err(at.error("the problem has no tests"));
    }
    Ok(Problem {
        id,
        prompt,
        task: Task::code(problem).map_err(|e| at.error(e.to_string()))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> RowRef<'static> {
        RowRef {
            source: "rows",
            index: 4,
        }
    }

    #[test]
    fn math_rows_take_numeric_answers() {
        let p = math_row(&at(), &json!({"problem": "1+1?", "answer": 2})).unwrap();
        assert_eq!(p.task, Task::Math { gold: "2".into() });
        assert_eq!(p.id, "rows-4");
        assert!(p.prompt.starts_with("1+1?\nPlease reason step by step"));
        let e = math_row(&at(), &json!({"problem": "x"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rows row 5: missing field `answer` (string or number)"
        );
    }

    #[test]
    fn choice_rows_accept_lists_maps_labels_and_indices() {
        let p = choice_row(
            &at(),
            &json!({"id": 7, "question": "Q?", "choices": ["x", "y", "z"], "answer": "C"}),
        )
        .unwrap();
        assert_eq!(p.id, "7");
        assert_eq!(
            p.task,
            Task::Choice {
                labels: vec!['A', 'B', 'C'],
                answer: 'C'
            }
        );
        assert!(p.prompt.contains("A. x\nB. y\nC. z"));
        let p = choice_row(
            &at(),
            &json!({"question": "Q?", "choices": {"B": "y", "A": "x"}, "answer": 1}),
        )
        .unwrap();
        assert!(matches!(p.task, Task::Choice { answer: 'B', .. }));
        let p = choice_row(
            &at(),
            &json!({"question": "Q?", "choices": ["x", "y"], "labels": ["1", "2"], "answer": "2"}),
        )
        .unwrap();
        assert!(matches!(p.task, Task::Choice { answer: '2', .. }));
        let e = choice_row(
            &at(),
            &json!({"question": "Q?", "choices": ["x", "y"], "answer": "E"}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`answer`"), "{e}");
    }

    #[test]
    fn code_rows_in_each_shape() {
        let he = json!({"task_id": "HumanEval/0", "prompt": "def f(x):\n    \"\"\"Double.\"\"\"\n",
            "entry_point": "f", "test": "def check(candidate):\n    assert candidate(1) == 2\n"});
        let p = code_row(&at(), &he).unwrap();
        let Task::Code { problem, .. } = &p.task else {
            panic!("{p:?}")
        };
        assert!(problem.prelude.contains("def f(x):"));
        assert!(p.prompt.contains("```python\ndef f(x):"));
        let leet = json!({"question": "Sum.", "test": "def check(candidate):\n    assert candidate(1) == 1\n\ncheck(Solution().f)"});
        let p = code_row(&at(), &leet).unwrap();
        let Task::Code { problem, .. } = &p.task else {
            panic!()
        };
        assert_eq!(problem.tests.len(), 1);
        let stdio = json!({"problem": "Echo.", "tests": [{"input": "1\n", "output": "1\n"}]});
        let p = code_row(&at(), &stdio).unwrap();
        assert!(p.prompt.contains("standard input"));
        let mbpp = json!({"task_id": 11, "text": "Remove chars.", "code": "",
            "test_list": ["assert f(1) == 1"], "test_setup_code": ""});
        assert!(
            code_row(&at(), &mbpp)
                .unwrap()
                .prompt
                .contains("assert f(1) == 1")
        );
        assert!(
            code_row(&at(), &json!({"prompt": "x"}))
                .unwrap_err()
                .to_string()
                .contains("tests|test|test_list")
        );
    }
}
