//! The candle-free `crucible-verify` binary: the same verdicts as the library, from the command
//! line, and a clear error naming the file and line of a bad JSONL input.

use std::process::Command;

fn crucible_verify(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crucible-verify"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("crucible-verify runs")
}

#[test]
fn a_math_pair_gets_the_library_verdict() {
    let right = crucible_verify(&[
        "math",
        "--gold",
        r"\frac{9}{7}",
        "--answer",
        r"so $x = \boxed{\dfrac97}$",
    ]);
    assert!(right.status.success());
    let text = String::from_utf8_lossy(&right.stdout);
    assert!(text.contains("verdict:             correct"), "{text}");
    let wrong = crucible_verify(&["math", "--gold", "3", "--answer", r"\boxed{4}"]);
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("verdict:             wrong"));
}

#[test]
fn a_jsonl_file_is_verified_line_by_line_and_a_bad_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.jsonl");
    std::fs::write(&pairs, "{\"gold\": \"2\", \"completion\": \"\\\\boxed{2}\"}\n{\"gold\": \"5\", \"completion\": \"\\\\boxed{6}\"}\n").unwrap();
    let out = crucible_verify(&["math", "--jsonl", pairs.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let correct: Vec<bool> = verdicts
        .iter()
        .map(|v| v["correct"].as_bool().unwrap())
        .collect();
    assert_eq!(correct, [true, false]);

    std::fs::write(
        &pairs,
        "{\"gold\": \"2\", \"completion\": \"x\"}\nnot json\n",
    )
    .unwrap();
    let bad = crucible_verify(&["math", "--jsonl", pairs.to_str().unwrap()]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("pairs.jsonl:2"), "{err}");
}
