//! Code problems and their tests, read from the public benchmark formats.
//!
//! Why per-assert tests: the test-difficulty reward needs a verdict per test, so a HumanEval or
//! LeetCode `check(candidate)` function is split into one test per assert statement (setup
//! statements before an assert run with it).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Errors reading a problem.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("problem {id}: field `{field}` is missing or has the wrong type")]
    Field { id: String, field: &'static str },
    #[error("problem {id}: unknown format (expected code_rl, HumanEval or MBPP fields)")]
    Unknown { id: String },
    #[error("problem {id}: `tiers` has {got} labels for {want} tests")]
    TierCount { id: String, got: usize, want: usize },
}

/// One test case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestCase {
    /// Feed `input` on stdin; stdout must match `output` (whitespace- and float-tolerant).
    Stdio { input: String, output: String },
    /// Python code run after the solution in the same namespace; passes when it raises nothing.
    Call { code: String },
}

/// A problem ready to judge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeProblem {
    pub id: String,
    pub tests: Vec<TestCase>,
    /// Python run before the solution (imports that LeetCode-style solutions assume).
    pub prelude: String,
    /// Given difficulty tier per test (0 = easiest), when the dataset has them.
    pub tiers: Option<Vec<usize>>,
    /// A known-good solution, when the dataset has one.
    pub reference_solution: Option<String>,
}

/// Imports LeetCode solutions take for granted (`List`, `defaultdict`, `heappush` …).
const LEETCODE_PRELUDE: &str = "from typing import *\nfrom collections import *\nfrom itertools import *\n\
from functools import *\nfrom heapq import *\nfrom bisect import *\n\
from math import inf, gcd, lcm, comb, perm, factorial, sqrt, isqrt, log, log2, ceil, floor\n\
import math, heapq, bisect, itertools, functools, collections, re, string, operator, random, sys\n";

fn str_field<'a>(v: &'a Value, id: &str, field: &'static str) -> Result<&'a str, FormatError> {
    v.get(field)
        .and_then(Value::as_str)
        .ok_or(FormatError::Field {
            id: id.to_string(),
            field,
        })
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Splits Python source into top-level statements of a block whose lines share `indent`.
fn statements(lines: &[&str], indent: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut depth: i32 = 0;
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let starts_new = depth == 0 && indent_of(line) <= indent;
        if starts_new || out.is_empty() {
            out.push(String::new());
        }
        if let Some(last) = out.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
        for c in line.chars() {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                _ => {}
            }
        }
        depth = depth.max(0);
    }
    out
}

/// Splits `def check(candidate): …` plus the code after it into one test per assert statement.
pub fn split_check(test_code: &str, call: &str) -> Vec<TestCase> {
    let whole = || {
        vec![TestCase::Call {
            code: format!("{test_code}\n{call}\n"),
        }]
    };
    let lines: Vec<&str> = test_code.lines().collect();
    let Some(def) = lines
        .iter()
        .position(|l| l.trim_start().starts_with("def check("))
    else {
        return whole();
    };
    let def_indent = indent_of(lines[def]);
    let body_end = lines[def + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && indent_of(l) <= def_indent)
        .map_or(lines.len(), |p| def + 1 + p);
    let body = &lines[def + 1..body_end];
    let Some(first) = body.iter().find(|l| !l.trim().is_empty()) else {
        return whole();
    };
    let body_indent = indent_of(first);
    let before = lines[..def].join("\n");
    let after = lines[body_end..].join("\n");
    let header = lines[def];
    let pad = &first[..body_indent];
    let mut setup = String::new();
    let mut tests = Vec::new();
    for stmt in statements(body, body_indent) {
        if stmt.contains("assert") {
            tests.push(TestCase::Call {
                code: format!("{before}\n{header}\n{setup}{stmt}{pad}pass\n{after}\n{call}\n"),
            });
        } else {
            setup.push_str(&stmt);
        }
    }
    if tests.is_empty() { whole() } else { tests }
}

impl CodeProblem {
    /// Reads one record of `code_rl/*.jsonl`, `humaneval/HumanEval.jsonl`, `mbpp/*.jsonl`, or our
    /// own `{"id", "tests": [...], "tiers": [...]}` form.
    pub fn from_json(v: &Value) -> Result<CodeProblem, FormatError> {
        let id = v
            .get("id")
            .or_else(|| v.get("task_id"))
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .unwrap_or_else(|| "<no id>".to_string());
        let mut prelude = String::new();
        let mut reference_solution = None;
        let tests = if let Some(kind) = v.get("test_type").and_then(Value::as_str) {
            reference_solution = v
                .get("reference_solution")
                .and_then(Value::as_str)
                .map(str::to_string);
            match kind {
                "functional" => {
                    prelude = LEETCODE_PRELUDE.to_string();
                    split_check(str_field(v, &id, "tests")?, "")
                }
                _ => stdio_tests(v.get("tests"), &id)?,
            }
        } else if let Some(entry) = v.get("entry_point").and_then(Value::as_str) {
            let prompt = str_field(v, &id, "prompt")?;
            reference_solution = v
                .get("canonical_solution")
                .and_then(Value::as_str)
                .map(|c| format!("{prompt}{c}"));
            split_check(str_field(v, &id, "test")?, &format!("check({entry})"))
        } else if let Some(list) = v.get("test_list").and_then(Value::as_array) {
            let setup = v
                .get("test_setup_code")
                .and_then(Value::as_str)
                .unwrap_or("");
            let imports = v
                .get("test_imports")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            reference_solution = v
                .get("code")
                .and_then(Value::as_str)
                .map(|c| c.replace("\r\n", "\n"));
            list.iter()
                .map(|t| {
                    let code = t.as_str().ok_or(FormatError::Field {
                        id: id.clone(),
                        field: "test_list",
                    })?;
                    Ok(TestCase::Call {
                        code: format!("{imports}\n{setup}\n{code}\n"),
                    })
                })
                .collect::<Result<_, FormatError>>()?
        } else if v.get("tests").is_some() {
            own_tests(v.get("tests"), &id)?
        } else {
            return Err(FormatError::Unknown { id });
        };
        let tiers = match v.get("tiers") {
            Some(t) => {
                let labels: Vec<usize> =
                    serde_json::from_value(t.clone()).map_err(|_| FormatError::Field {
                        id: id.clone(),
                        field: "tiers",
                    })?;
                if labels.len() != tests.len() {
                    return Err(FormatError::TierCount {
                        id,
                        got: labels.len(),
                        want: tests.len(),
                    });
                }
                Some(labels)
            }
            None => None,
        };
        Ok(CodeProblem {
            id,
            tests,
            prelude,
            tiers,
            reference_solution,
        })
    }
}

fn stdio_tests(tests: Option<&Value>, id: &str) -> Result<Vec<TestCase>, FormatError> {
    let bad = || FormatError::Field {
        id: id.to_string(),
        field: "tests",
    };
    let tests = tests.ok_or_else(bad)?;
    // CodeContests originals: {"inputs": [...], "outputs": [...]}.
    if let (Some(ins), Some(outs)) = (
        tests.get("inputs").and_then(Value::as_array),
        tests.get("outputs").and_then(Value::as_array),
    ) {
        return ins
            .iter()
            .zip(outs)
            .map(|(i, o)| {
                Ok(TestCase::Stdio {
                    input: i.as_str().ok_or_else(bad)?.to_string(),
                    output: o.as_str().ok_or_else(bad)?.to_string(),
                })
            })
            .collect();
    }
    tests
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|t| {
            Ok(TestCase::Stdio {
                input: t
                    .get("input")
                    .and_then(Value::as_str)
                    .ok_or_else(bad)?
                    .to_string(),
                output: t
                    .get("output")
                    .and_then(Value::as_str)
                    .ok_or_else(bad)?
                    .to_string(),
            })
        })
        .collect()
}

/// Our own form: `tests` is a list of `{"input","output"}` or `{"code"}` objects.
fn own_tests(tests: Option<&Value>, id: &str) -> Result<Vec<TestCase>, FormatError> {
    let bad = || FormatError::Field {
        id: id.to_string(),
        field: "tests",
    };
    let list = tests.and_then(Value::as_array).ok_or_else(bad)?;
    if list.iter().all(|t| t.get("code").is_some()) {
        return list
            .iter()
            .map(|t| {
                Ok(TestCase::Call {
                    code: t
                        .get("code")
                        .and_then(Value::as_str)
                        .ok_or_else(bad)?
                        .to_string(),
                })
            })
            .collect();
    }
    stdio_tests(tests, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_check_functions_per_assert() {
        let code = "def check(candidate):\n    x = 3\n    assert candidate(x) == 4\n    assert candidate(\n        1) == 2\n\n\ncheck(Solution().f)";
        let tests = split_check(code, "");
        assert_eq!(tests.len(), 2);
        let TestCase::Call { code } = &tests[1] else {
            panic!()
        };
        assert!(
            code.contains("x = 3")
                && code.contains("candidate(\n        1)")
                && code.contains("check(Solution().f)")
        );
        assert!(!code.contains("candidate(x) == 4"));
    }

    #[test]
    fn reads_each_format() {
        let leet = serde_json::json!({"id": "l", "test_type": "functional",
            "tests": "def check(candidate):\n    assert candidate(1) == 1\n    assert candidate(2) == 2\n\ncheck(Solution().f)"});
        let p = CodeProblem::from_json(&leet).unwrap();
        assert_eq!(p.tests.len(), 2);
        assert!(p.prelude.contains("from typing import *"));
        let cf = serde_json::json!({"id": "c", "test_type": "stdin_stdout", "tests": [{"input": "1", "output": "2"}]});
        assert_eq!(CodeProblem::from_json(&cf).unwrap().tests.len(), 1);
        let mbpp = serde_json::json!({"task_id": 3, "code": "def f(x): return x", "test_setup_code": "",
            "test_list": ["assert f(1) == 1", "assert f(2) == 2", "assert f(3) == 3"]});
        let p = CodeProblem::from_json(&mbpp).unwrap();
        assert_eq!((p.id.as_str(), p.tests.len()), ("3", 3));
        let he = serde_json::json!({"task_id": "HumanEval/0", "prompt": "def f(x):\n", "canonical_solution": "    return x\n",
            "entry_point": "f", "test": "def check(candidate):\n    assert candidate(1) == 1\n"});
        let p = CodeProblem::from_json(&he).unwrap();
        assert_eq!(
            p.reference_solution.as_deref(),
            Some("def f(x):\n    return x\n")
        );
        let tiered = serde_json::json!({"id": "t", "tests": [{"input": "1", "output": "1"}], "tiers": [0, 1]});
        assert!(matches!(
            CodeProblem::from_json(&tiered),
            Err(FormatError::TierCount { .. })
        ));
        assert!(matches!(
            CodeProblem::from_json(&serde_json::json!({"id": "x"})),
            Err(FormatError::Unknown { .. })
        ));
    }
}
