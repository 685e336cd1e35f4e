//! Benchmark loaders on the real files of `$CRUCIBLE_DATA_DIR` (counts from MANIFEST.md), and
//! dataset rows. GPQA-Diamond's questions are never printed here: only counts and labels.

use std::collections::BTreeMap;

use crucible_types::dataset::DatasetKind;
use crucible_verify::Task;
use crucible_worker::eval::{BENCHMARKS, Benchmark, EvalError, load_benchmark};
use serde_json::json;

use crucible_types::testing::data_dir;

fn kinds(b: &Benchmark) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for p in &b.problems {
        let k = match p.task {
            Task::Math { .. } => "math",
            Task::Choice { .. } => "choice",
            Task::Code { .. } => "code",
            Task::Exact { .. } => "exact",
        };
        *m.entry(k).or_default() += 1;
    }
    m
}

#[test]
fn every_benchmark_loads_with_the_manifest_counts() {
    let Some(dir) = data_dir("every_benchmark_loads_with_the_manifest_counts") else {
        return;
    };
    let expected = [
        ("gsm8k", 1319, "math"),
        ("math500", 500, "math"),
        ("aime2024", 30, "math"),
        ("aime2025", 30, "math"),
        ("amc2023", 40, "math"),
        ("humaneval", 164, "code"),
        ("mbpp", 500, "code"),
        ("mmlu", 14042, "choice"),
        ("arc_challenge", 1172, "choice"),
    ];
    for (name, count, kind) in expected {
        let b = load_benchmark(name, Some(&dir), None).unwrap();
        assert_eq!(b.name, name);
        assert_eq!(b.problems.len(), count, "{name}");
        assert_eq!(kinds(&b).get(kind), Some(&count), "{name}");
        let mut ids: Vec<&str> = b.problems.iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count, "{name}: ids are unique");
    }
    // BBH: 6,511 rows; lettered targets are choice problems, the rest compared as text.
    let bbh = load_benchmark("bbh", Some(&dir), None).unwrap();
    assert_eq!(bbh.problems.len(), 6511);
    let k = kinds(&bbh);
    assert_eq!(k["choice"] + k["exact"], 6511);
    assert!(k["choice"] > 3000 && k["exact"] > 2000, "{k:?}");
}

#[test]
fn loaders_keep_golds_prompts_and_limits() {
    let Some(dir) = data_dir("loaders_keep_golds_prompts_and_limits") else {
        return;
    };
    let gsm = load_benchmark("gsm8k", Some(&dir), Some(3)).unwrap();
    assert_eq!(gsm.problems.len(), 3);
    assert_eq!(gsm.problems[0].id, "gsm8k-test-0");
    assert_eq!(gsm.problems[0].task, Task::Math { gold: "18".into() });
    assert!(
        gsm.problems[0]
            .prompt
            .ends_with("\nPlease reason step by step, and put your final answer within \\boxed{}.")
    );
    let aime = load_benchmark("aime2025", Some(&dir), Some(1)).unwrap();
    assert_eq!(aime.problems[0].task, Task::Math { gold: "70".into() });
    let amc = load_benchmark("amc2023", Some(&dir), Some(1)).unwrap();
    assert_eq!(amc.problems[0].task, Task::Math { gold: "27".into() });
    let mbpp = load_benchmark("mbpp", Some(&dir), Some(1)).unwrap();
    assert_eq!(mbpp.problems[0].id, "mbpp-11");
    assert!(
        mbpp.problems[0]
            .prompt
            .contains("Your code should pass these tests")
    );
    let he = load_benchmark("humaneval", Some(&dir), Some(1)).unwrap();
    assert_eq!(he.problems[0].id, "HumanEval/0");
    assert!(he.problems[0].prompt.contains("def has_close_elements("));
    let mmlu = load_benchmark("mmlu", Some(&dir), Some(1)).unwrap();
    assert!(mmlu.problems[0].prompt.contains("\nA. "));
    assert!(matches!(
        &mmlu.problems[0].task,
        Task::Choice { labels, .. } if labels == &['A', 'B', 'C', 'D']
    ));
}

#[test]
fn gpqa_diamond_loads_from_the_zip_without_writing_anything() {
    let Some(dir) = data_dir("gpqa_diamond_loads_from_the_zip_without_writing_anything") else {
        return;
    };
    let folder = dir.join("gpqa_diamond");
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    let b = load_benchmark("gpqa_diamond", Some(&dir), None).unwrap();
    assert_eq!(listing(), before, "nothing was extracted next to the zip");
    assert_eq!(before, ["gpqa_diamond.zip"]);
    assert_eq!(b.problems.len(), 198);
    // MANIFEST.md: correct labels A 55 · B 54 · C 48 · D 41.
    let mut answers = BTreeMap::new();
    for p in &b.problems {
        let Task::Choice { labels, answer } = &p.task else {
            panic!("problem {} is not multiple choice", p.id)
        };
        assert_eq!(labels, &['A', 'B', 'C', 'D'], "{}", p.id);
        *answers.entry(*answer).or_insert(0) += 1;
    }
    assert_eq!(
        answers,
        BTreeMap::from([('A', 55), ('B', 54), ('C', 48), ('D', 41)])
    );
}

#[test]
fn unknown_names_and_missing_data_are_named() {
    let e = load_benchmark("gsm9k", None, None).unwrap_err();
    assert!(matches!(e, EvalError::UnknownBenchmark { .. }));
    assert!(e.to_string().contains("gsm8k"), "{e}");
    // Every file-backed benchmark names the variable; the built-in synthetic one needs no data.
    for name in BENCHMARKS.iter().filter(|n| **n != "synthetic") {
        let e = load_benchmark(name, None, None).unwrap_err();
        assert!(e.to_string().contains("CRUCIBLE_DATA_DIR"), "{e}");
    }
    let e = load_benchmark("gsm8k", Some(std::path::Path::new("/nonexistent")), None).unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/gsm8k/test.jsonl"),
        "{e}"
    );
}

#[test]
fn dataset_rows_become_benchmarks_and_bad_rows_are_named() {
    let rows = vec![
        json!({"problem": "2+2?", "answer": "4"}),
        json!({"problem": "3+3?", "answer": 6}),
    ];
    let b = Benchmark::from_rows("mine", DatasetKind::Math, &rows).unwrap();
    assert_eq!(b.problems.len(), 2);
    assert_eq!(b.problems[1].task, Task::Math { gold: "6".into() });
    let rows = vec![
        json!({"problem": "x", "answer": "1"}),
        json!({"answer": "1"}),
    ];
    let e = Benchmark::from_rows("mine", DatasetKind::Math, &rows).unwrap_err();
    assert_eq!(e.to_string(), "mine row 2: missing text field `problem`");
    let rows = vec![json!({"question": "Q", "choices": ["a", "b"], "answer": "B"})];
    let b = Benchmark::from_rows("mcq", DatasetKind::Choice, &rows).unwrap();
    assert!(matches!(
        b.problems[0].task,
        Task::Choice { answer: 'B', .. }
    ));
    let rows = vec![json!({"prompt": "Echo", "tests": [{"input": "1", "output": "1"}]})];
    let b = Benchmark::from_rows("code", DatasetKind::Code, &rows).unwrap();
    assert!(b.has_code());
    assert!(Benchmark::from_rows("t", DatasetKind::Text, &[json!({})]).is_err());
}

#[test]
fn synthetic_benchmark_needs_no_data_and_is_held_out() {
    use crucible_verify::Task;
    use crucible_worker::data::synthetic::Split;
    use crucible_worker::eval::load_benchmark;
    let bench = load_benchmark("synthetic", None, None).unwrap();
    assert_eq!(
        bench.problems.len(),
        1000,
        "250 problems at each of 4 levels"
    );
    for (level, chunk) in bench.problems.chunks(250).enumerate() {
        let (steps, digits) = [(1, 1), (2, 2), (3, 2), (4, 3)][level];
        let prefix = format!("synthetic-s{steps}d{digits}-");
        assert!(
            chunk.iter().all(|p| p.id.starts_with(&prefix)),
            "level {level}"
        );
    }
    for p in &bench.problems {
        assert_eq!(
            Split::of(&p.prompt),
            Split::HeldOut,
            "{} is a training problem",
            p.id
        );
        match &p.task {
            Task::Math { gold } => assert!(gold.parse::<u64>().is_ok(), "{gold}"),
            other => panic!("synthetic problems are math, got {other:?}"),
        }
    }
    let ids: std::collections::HashSet<_> = bench.problems.iter().map(|p| &p.id).collect();
    assert_eq!(ids.len(), 1000);
    assert_eq!(
        load_benchmark("synthetic", None, Some(5))
            .unwrap()
            .problems
            .len(),
        5
    );
}
