//! The code judge on real programs: hostile programs are contained with the right verdict and
//! leave nothing behind; canonical HumanEval / MBPP / LeetCode solutions pass their own tests.
//!
//! Dataset parts read `$CRUCIBLE_DATA_DIR` and skip when it is unset.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crucible_verify::code::{
    CodeProblem, Isolation, Judge, Language, Limits, SandboxConfig, Solution, TestCase, Verdict,
};
use serde_json::Value;

/// Sandbox runs are heavy on this 2-core machine: tests in this file take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn tight_config() -> SandboxConfig {
    SandboxConfig {
        limits: Limits {
            cpu_seconds: 2,
            wall: Duration::from_secs(4),
            memory_bytes: 512 << 20,
            max_processes: 16,
            max_output_bytes: 64 << 10,
            max_file_bytes: 1 << 20,
        },
        ..SandboxConfig::default()
    }
}

fn stdio_problem(input: &str, output: &str) -> CodeProblem {
    CodeProblem {
        id: "hostile".into(),
        tests: vec![TestCase::Stdio {
            input: input.into(),
            output: output.into(),
        }],
        prelude: String::new(),
        tiers: None,
        reference_solution: None,
    }
}

fn python(src: &str) -> Solution {
    Solution {
        language: Language::Python,
        source: src.into(),
    }
}

/// Processes owned by the sandbox uids (61000..61512), read from /proc.
fn sandbox_processes() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|u| u.parse::<u32>().ok())
                .is_some_and(|u| (61_000..61_512).contains(&u))
        })
        .count()
}

/// Waits (up to 3 s) for killed sandbox processes to be reaped; returns how many remain.
fn settle() -> usize {
    for _ in 0..30 {
        if sandbox_processes() == 0 {
            return 0;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    sandbox_processes()
}

fn verdict(judge: &Judge, problem: &CodeProblem, src: &str) -> Verdict {
    let report = judge.judge(problem, &python(src)).expect("judge runs");
    report.tests[0].verdict
}

#[test]
fn hostile_programs_are_contained() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let iso = Isolation::detect();
    eprintln!("isolation on this machine: {iso:?}");
    let judge = Judge::new(tight_config()).expect("a Python 3 runs in the sandbox");
    let echo = stdio_problem("3\n", "6\n");

    assert_eq!(
        verdict(&judge, &echo, "print(int(input()) * 2)"),
        Verdict::Passed
    );
    assert_eq!(
        verdict(&judge, &echo, "print(int(input()) * 3)"),
        Verdict::WrongAnswer
    );
    assert_eq!(
        verdict(&judge, &echo, "raise ValueError('boom')"),
        Verdict::RuntimeError
    );
    assert_eq!(
        verdict(&judge, &echo, "while True: pass"),
        Verdict::TimeLimit,
        "busy loop"
    );
    assert_eq!(
        verdict(&judge, &echo, "import time\ntime.sleep(60)"),
        Verdict::TimeLimit,
        "sleeping past the wall limit"
    );
    assert_eq!(
        verdict(&judge, &echo, "x = bytearray(8 << 30)"),
        Verdict::MemoryLimit,
        "one huge allocation"
    );
    assert_eq!(
        verdict(
            &judge,
            &echo,
            "xs = []\nwhile True: xs.append(bytearray(1 << 20))"
        ),
        Verdict::MemoryLimit,
        "gradual memory hog"
    );
    assert_eq!(
        verdict(&judge, &echo, "while True: print('x' * 1000)"),
        Verdict::OutputLimit
    );

    if iso.network_namespace {
        let net =
            "import socket\ns = socket.create_connection(('1.1.1.1', 53), timeout=2)\nprint(6)";
        assert_eq!(
            verdict(&judge, &echo, net),
            Verdict::RuntimeError,
            "network must be unreachable"
        );
    } else {
        eprintln!("no network namespace here: network test skipped");
    }

    if iso.dedicated_uid && iso.rlimits && iso.pid_namespace {
        // Fork bomb, in a program that also tries to outlive the run in a new session.
        let bomb = "import os\nwhile True:\n    try:\n        if os.fork() == 0:\n            os.setsid()\n    except OSError:\n        pass";
        let v = verdict(&judge, &echo, bomb);
        assert!(
            matches!(v, Verdict::TimeLimit | Verdict::RuntimeError),
            "fork bomb verdict {v:?}"
        );
        assert_eq!(settle(), 0, "every process of the fork bomb is gone");

        // Writing outside the working directory: the grader's folder, the parent folder, /tmp, /etc
        // and the repository. Writes are refused or land in the run's private tmpfs; none reaches
        // the host.
        let grader = tempfile::tempdir().expect("temp dir");
        let target = grader.path().join("escape.txt");
        let repo_file = std::env::current_dir().expect("cwd").join("escape.txt");
        let outside = [
            target.clone(),
            PathBuf::from("../escape.txt"),
            PathBuf::from("/tmp/escape.txt"),
            PathBuf::from("/etc/escape.txt"),
            repo_file.clone(),
        ];
        let list = outside
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        let write = format!(
            "for p in [{list}]:\n    try:\n        open(p, 'w').write('x')\n    except OSError:\n        pass\nprint(6)"
        );
        assert_eq!(verdict(&judge, &echo, &write), Verdict::Passed);
        let sandbox_root = std::env::temp_dir().join("crucible-sandbox-0");
        for host in [
            target,
            PathBuf::from("/tmp/escape.txt"),
            PathBuf::from("/etc/escape.txt"),
            repo_file,
            sandbox_root.join("escape.txt"),
        ] {
            assert!(
                !host.exists(),
                "{} was written from inside the sandbox",
                host.display()
            );
        }

        // Reading the grader's files: a private file of ours, and the repository / data folders.
        let secret = grader.path().join("secret.txt");
        std::fs::write(&secret, "expected-output-42").expect("write secret");
        let here = std::env::current_dir().expect("cwd").join("Cargo.toml");
        let read = format!(
            "found = []\nfor p in [{:?}, {:?}]:\n    try:\n        found.append(open(p).read()[:20])\n    except OSError:\n        pass\nprint(6 if not found else found)",
            secret.display().to_string(),
            here.display().to_string()
        );
        assert_eq!(
            verdict(&judge, &echo, &read),
            Verdict::Passed,
            "grader files are unreadable"
        );
    } else {
        eprintln!(
            "no dedicated uid / rlimits / PID namespace here: fork-bomb and file tests skipped"
        );
    }

    // Exiting early must not count as passing a call test.
    let call = CodeProblem {
        id: "early-exit".into(),
        tests: vec![TestCase::Call {
            code: "assert f() == 2\n".into(),
        }],
        prelude: String::new(),
        tiers: None,
        reference_solution: None,
    };
    for cheat in [
        "import sys\nsys.exit(0)",
        "import os\nos._exit(0)",
        "def f(): return 1\nprint('pass')",
    ] {
        let v = verdict(&judge, &call, cheat);
        assert_ne!(v, Verdict::Passed, "{cheat}");
    }
    assert_eq!(verdict(&judge, &call, "def f(): return 2"), Verdict::Passed);
    assert_eq!(
        verdict(&judge, &call, "def f(): return 1"),
        Verdict::WrongAnswer
    );
    if iso.pid_namespace {
        assert_eq!(settle(), 0, "no sandbox process outlives its run");
    }
}

#[test]
fn cpp_solutions_compile_and_run() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !Judge::has_cpp() {
        eprintln!("g++ not found: C++ judging test skipped");
        return;
    }
    let judge = Judge::new(tight_config()).expect("judge");
    let problem = stdio_problem("2 3\n", "5\n");
    let ok = Solution {
        language: Language::Cpp,
        source:
            "#include <cstdio>\nint main(){int a,b;scanf(\"%d %d\",&a,&b);printf(\"%d\\n\",a+b);}\n"
                .into(),
    };
    assert_eq!(
        judge.judge(&problem, &ok).expect("judge").tests[0].verdict,
        Verdict::Passed
    );
    let bad = Solution {
        language: Language::Cpp,
        source: "int main( {".into(),
    };
    let report = judge.judge(&problem, &bad).expect("judge");
    assert_eq!(report.tests[0].verdict, Verdict::CompileError);
    let spin = Solution {
        language: Language::Cpp,
        source: "int main(){volatile int x=0; for(;;) x++;}".into(),
    };
    assert_eq!(
        judge.judge(&problem, &spin).expect("judge").tests[0].verdict,
        Verdict::TimeLimit
    );
}

fn data_dir() -> Option<PathBuf> {
    let d = std::env::var_os("CRUCIBLE_DATA_DIR").map(PathBuf::from);
    if d.is_none() {
        eprintln!("CRUCIBLE_DATA_DIR is unset: skipping the dataset part");
    }
    d
}

fn read_problems(path: &Path) -> Vec<CodeProblem> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1));
            CodeProblem::from_json(&v)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Judges each problem's reference solution on `workers` threads; returns (passed, failures).
fn judge_references(
    judge: &Judge,
    problems: &[CodeProblem],
    workers: usize,
) -> (usize, Vec<String>) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let passed = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(p) = problems.get(i) else { break };
                    let Some(src) = &p.reference_solution else {
                        continue;
                    };
                    let report = judge.judge(p, &python(src)).expect("judge runs");
                    if report.passed().iter().all(|x| *x) {
                        passed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else {
                        let bad: Vec<_> = report.tests.iter().map(|t| t.verdict).collect();
                        let tail = report
                            .tests
                            .iter()
                            .map(|t| t.stderr_tail.as_str())
                            .collect::<Vec<_>>()
                            .join("|");
                        let tail: String = tail
                            .chars()
                            .rev()
                            .take(300)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect();
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("{}: {bad:?} {tail}", p.id));
                    }
                }
            });
        }
    });
    (
        passed.into_inner(),
        failures.into_inner().unwrap_or_else(|e| e.into_inner()),
    )
}

#[test]
fn canonical_solutions_pass_their_tests() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dir) = data_dir() else { return };
    let judge = Judge::new(SandboxConfig::default()).expect("judge");
    let humaneval = read_problems(&dir.join("humaneval/HumanEval.jsonl"));
    let mbpp: Vec<CodeProblem> = read_problems(&dir.join("mbpp/mbpp.jsonl"))
        .into_iter()
        .filter(|p| p.id.parse::<u32>().is_ok_and(|id| (11..=510).contains(&id)))
        .collect();
    let leetcode: Vec<CodeProblem> = read_problems(&dir.join("code_rl/test_leetcode.jsonl"))
        .into_iter()
        .take(60)
        .collect();
    for (name, problems, min_rate) in [
        ("HumanEval", &humaneval, 0.99),
        ("MBPP test", &mbpp, 0.99),
        ("LeetCode (60)", &leetcode, 0.95),
    ] {
        let with_reference = problems
            .iter()
            .filter(|p| p.reference_solution.is_some())
            .count();
        let (passed, failures) = judge_references(&judge, problems, 2);
        for f in &failures {
            eprintln!("{name} failure: {f}");
        }
        let rate = passed as f64 / with_reference as f64;
        eprintln!(
            "{name}: {passed}/{with_reference} reference solutions pass ({:.1}%)",
            rate * 100.0
        );
        assert!(
            with_reference > 0 && rate >= min_rate,
            "{name}: {passed}/{with_reference}"
        );
    }
}
