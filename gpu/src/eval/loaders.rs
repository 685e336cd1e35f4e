//! Loaders of the public benchmarks from the shared data folder (`CRUCIBLE_DATA_DIR`, laid out as
//! `shared/datasets/MANIFEST.md` describes).
//!
//! Why GPQA is read from its zip in memory: its authors ask that the questions never appear in
//! plain text; the archive is decrypted into a buffer and nothing of it is written or logged.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::LazyLock;

use crucible_types::dataset::DatasetKind;
use regex::Regex;
use serde_json::Value;

use super::EvalError;
use super::benchmark::{Benchmark, Problem, ProblemKind};
use super::prompts;
use super::rows::{RowRef, problem_from_row, row_id};

/// The benchmarks [`load_benchmark`] knows, in the order docs/eval.md lists them.
pub const BENCHMARKS: &[&str] = &[
    "gsm8k",
    "math500",
    "aime2024",
    "aime2025",
    "amc2023",
    "humaneval",
    "mbpp",
    "gpqa_diamond",
    "mmlu",
    "arc_challenge",
    "bbh",
];

/// The GPQA archive's password, published with the data (MANIFEST.md); it only keeps the
/// questions out of web crawls, it protects nothing.
const GPQA_PASSWORD: &[u8] = b"deserted-untie-orchid";
/// MBPP's test split (task ids 11–510); 1–10 are few-shot examples, the rest train/validation.
const MBPP_TEST_IDS: std::ops::RangeInclusive<u64> = 11..=510;

/// Loads benchmark `name` from `data_dir`, keeping the first `limit` problems.
pub fn load_benchmark(
    name: &str,
    data_dir: Option<&Path>,
    limit: Option<usize>,
) -> Result<Benchmark, EvalError> {
    if !BENCHMARKS.contains(&name) {
        return Err(EvalError::UnknownBenchmark {
            name: name.to_string(),
        });
    }
    let dir = data_dir.ok_or_else(|| EvalError::NoDataDir {
        benchmark: name.to_string(),
    })?;
    let rows_of = |file: &str, kind| -> Result<Vec<Problem>, EvalError> {
        let path = dir.join(file);
        let rows = read_jsonl(&path)?;
        rows.iter()
            .enumerate()
            .map(|(i, row)| problem_from_row(file, kind, i, row))
            .collect()
    };
    let problems = match name {
        "gsm8k" => rows_of("gsm8k/test.jsonl", DatasetKind::Math)?,
        "math500" | "aime2024" | "aime2025" | "amc2023" => {
            rows_of(&format!("{name}/test.jsonl"), DatasetKind::Math)?
        }
        "humaneval" => rows_of("humaneval/HumanEval.jsonl", DatasetKind::Code)?,
        "mbpp" => load_mbpp(dir)?,
        "gpqa_diamond" => load_gpqa(dir)?,
        "mmlu" => rows_of("mmlu/test.jsonl", DatasetKind::Choice)?,
        "arc_challenge" => rows_of("arc_challenge/test.jsonl", DatasetKind::Choice)?,
        "bbh" => load_bbh(dir)?,
        _ => {
            return Err(EvalError::UnknownBenchmark {
                name: name.to_string(),
            });
        }
    };
    tracing::debug!(benchmark = name, problems = problems.len(), "loaded");
    Ok(Benchmark::from_problems(name, problems).truncated(limit))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> EvalError + '_ {
    move |source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Parses JSON lines from `reader`, skipping blank lines; errors name `source` and the line.
fn parse_jsonl(reader: impl BufRead, source: &str, path: &Path) -> Result<Vec<Value>, EvalError> {
    let mut rows = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(io_error(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let row = serde_json::from_str(&line)
            .map_err(|e| RowRef { source, index }.error(format!("not valid JSON: {e}")))?;
        rows.push(row);
    }
    Ok(rows)
}

fn read_jsonl(path: &Path) -> Result<Vec<Value>, EvalError> {
    let file = File::open(path).map_err(io_error(path))?;
    parse_jsonl(BufReader::new(file), &path.display().to_string(), path)
}

/// MBPP's 500 test problems from the full file (the sanitized file is a different, smaller set).
fn load_mbpp(dir: &Path) -> Result<Vec<Problem>, EvalError> {
    let file = "mbpp/mbpp.jsonl";
    let rows = read_jsonl(&dir.join(file))?;
    let mut problems = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let task = row.get("task_id").and_then(Value::as_u64);
        let Some(task) = task else {
            return Err(RowRef {
                source: file,
                index: i,
            }
            .error("missing integer field `task_id`"));
        };
        if MBPP_TEST_IDS.contains(&task) {
            let mut p = problem_from_row(file, DatasetKind::Code, i, row)?;
            p.id = format!("mbpp-{task}");
            problems.push(p);
        }
    }
    Ok(problems)
}

/// GPQA-Diamond's normalized `test.jsonl`, decrypted from the zip into memory only.
fn load_gpqa(dir: &Path) -> Result<Vec<Problem>, EvalError> {
    let path = dir.join("gpqa_diamond/gpqa_diamond.zip");
    let archive_error = |message: String| EvalError::Archive {
        path: path.clone(),
        message,
    };
    let file = File::open(&path).map_err(io_error(&path))?;
    let mut archive =
        zip::ZipArchive::new(BufReader::new(file)).map_err(|e| archive_error(e.to_string()))?;
    let mut text = String::new();
    archive
        .by_name_decrypt("test.jsonl", GPQA_PASSWORD)
        .map_err(|e| archive_error(format!("test.jsonl: {e}")))?
        .read_to_string(&mut text)
        .map_err(|e| archive_error(format!("test.jsonl: {e}")))?;
    let source = "gpqa_diamond.zip:test.jsonl";
    parse_jsonl(text.as_bytes(), source, &path)?
        .iter()
        .enumerate()
        .map(|(i, row)| problem_from_row(source, DatasetKind::Choice, i, row))
        .collect()
}

/// `(A)` options at the start of a line of a BBH input.
static BBH_OPTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^\(([A-Z])\)").expect("static regex"));

/// BBH: lettered targets `(C)` become choice problems over the options in the input; every
/// other target (`True`, `valid`, `] ) }`, numbers, word lists) is compared as text.
fn load_bbh(dir: &Path) -> Result<Vec<Problem>, EvalError> {
    let file = "bbh/test.jsonl";
    let rows = read_jsonl(&dir.join(file))?;
    rows.iter()
        .enumerate()
        .map(|(index, row)| {
            let at = RowRef {
                source: file,
                index,
            };
            let field = |name: &str| {
                row.get(name)
                    .and_then(Value::as_str)
                    .ok_or_else(|| at.error(format!("missing text field `{name}`")))
            };
            let (input, target) = (field("input")?, field("target")?);
            let letter = target
                .strip_prefix('(')
                .and_then(|t| t.strip_suffix(')'))
                .filter(|t| t.len() == 1)
                .and_then(|t| t.chars().next());
            let kind = match letter {
                Some(answer) => {
                    let labels: Vec<char> = BBH_OPTION
                        .captures_iter(input)
                        .filter_map(|c| c[1].chars().next())
                        .collect();
                    if !labels.contains(&answer) {
                        return Err(at.error(format!(
                            "target {target} is not among the input's options {labels:?}"
                        )));
                    }
                    ProblemKind::Choice { labels, answer }
                }
                None => ProblemKind::Exact {
                    gold: target.to_string(),
                },
            };
            Ok(Problem {
                id: row_id(&at, row),
                prompt: prompts::bbh(input),
                kind,
            })
        })
        .collect()
}
