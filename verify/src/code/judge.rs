//! Judging a candidate program against a problem's tests, one sandboxed process per test.
//!
//! Why one process per test: a crash, a hang or a corrupted global in one test must not decide
//! another, and per-test verdicts are what the test-difficulty reward is built on.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::formats::{CodeProblem, TestCase};
use super::sandbox::{Limits, RunOutcome, Sandbox, SandboxConfig, SandboxError, WorkDirAccess};

/// Errors of the judge (never of the judged program, which gets a [`Verdict`]).
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("no Python 3 interpreter runs inside the sandbox (tried {0})")]
    NoPython(String),
    #[error("no C++ compiler (g++) on this machine")]
    NoCompiler,
    #[error("problem {0}: function-call tests need a Python solution")]
    CallTestNeedsPython(String),
}

/// The verdict of one test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    WrongAnswer,
    RuntimeError,
    TimeLimit,
    MemoryLimit,
    /// More output than the cap (the run was killed).
    OutputLimit,
    /// The C++ source did not compile (every test gets this verdict).
    CompileError,
}

/// A candidate program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    Python,
    Cpp,
}

/// Source code plus its language.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Solution {
    pub language: Language,
    pub source: String,
}

impl Solution {
    /// The last fenced code block of a completion (```python / ```cpp …), or the whole text when
    /// there is no fence; the fence tag decides the language, Python by default.
    pub fn from_completion(text: &str) -> Solution {
        let mut best: Option<(Language, String)> = None;
        let mut rest = text;
        while let Some(start) = rest.find("```") {
            let after = &rest[start + 3..];
            let (tag, body) = after.split_once('\n').unwrap_or((after, ""));
            let Some(end) = body.find("```") else { break };
            let lang = match tag.trim().to_ascii_lowercase().as_str() {
                "cpp" | "c++" | "cc" | "cxx" => Language::Cpp,
                _ => Language::Python,
            };
            best = Some((lang, body[..end].to_string()));
            rest = &body[end + 3..];
        }
        let (language, source) = best.unwrap_or((Language::Python, text.to_string()));
        Solution { language, source }
    }
}

/// The result of one test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    pub verdict: Verdict,
    /// Wall time of the run.
    pub wall: Duration,
    /// The end of stderr (for people debugging a verdict).
    pub stderr_tail: String,
}

/// All test results of one solution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeReport {
    pub tests: Vec<TestResult>,
    pub compile_output: Option<String>,
    pub wall: Duration,
}

impl JudgeReport {
    /// Pass/fail per test, the input of every reward.
    pub fn passed(&self) -> Vec<bool> {
        self.tests
            .iter()
            .map(|t| t.verdict == Verdict::Passed)
            .collect()
    }
}

/// Compares program output with the expected output token by token; numbers written with a
/// decimal point may differ by 1e-6 (absolute or relative), as contest checkers allow.
pub fn outputs_match(got: &str, want: &str) -> bool {
    let mut g = got.split_whitespace();
    let mut w = want.split_whitespace();
    loop {
        match (g.next(), w.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => {
                let float = a.contains('.') || b.contains('.');
                match (a.parse::<f64>(), b.parse::<f64>()) {
                    (Ok(x), Ok(y)) if float && (x - y).abs() <= 1e-6 * y.abs().max(1.0) => {}
                    _ => return false,
                }
            }
            _ => return false,
        }
    }
}

/// The Python program that runs the solution and one call test, reporting through a secret
/// marker on a duplicate of stdout — so a solution that exits early (`sys.exit(0)`,
/// `os._exit(0)`) or prints a fake "pass" is not counted as passing. (Code in the same process
/// can still inspect the runner's frames; the marker defeats exits and prints, not introspection.)
fn call_runner(marker: &str) -> String {
    format!(
        r#"import os, sys, traceback
_fd = os.dup(1)
def _report(status):
    os.write(_fd, ("\n{marker}:" + status + "\n").encode())
    os._exit(0)
_g = {{"__name__": "solution"}}
try:
    with open("solution.py") as _f:
        exec(compile(_f.read(), "solution.py", "exec"), _g)
    with open("test.py") as _f:
        exec(compile(_f.read(), "test.py", "exec"), _g)
except AssertionError:
    traceback.print_exc()
    _report("wrong")
except MemoryError:
    _report("memory")
except BaseException:
    traceback.print_exc()
    _report("error")
_report("pass")
"#
    )
}

fn random_marker() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..24)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;

/// Decides the verdict from how the process ended (shared by both test kinds).
fn failure_verdict(out: &RunOutcome) -> Option<Verdict> {
    if out.timed_out {
        return Some(Verdict::TimeLimit);
    }
    if out.output_exceeded {
        return Some(Verdict::OutputLimit);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("MemoryError")
        || stderr.contains("bad_alloc")
        || stderr.contains("Cannot allocate memory")
    {
        return Some(Verdict::MemoryLimit);
    }
    match out.signal() {
        Some(SIGXCPU) | Some(SIGKILL) => Some(Verdict::TimeLimit),
        Some(_) => Some(Verdict::RuntimeError),
        None => None,
    }
}

fn tail(bytes: &[u8], n: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    s[start..].to_string()
}

/// Finds a Python 3 that starts inside the sandbox (a pyenv shim under /root would not, nor one
/// under /usr/local, which the sandbox hides; `CRUCIBLE_SANDBOX_PYTHON` names another one, whose
/// prefix then belongs in `CRUCIBLE_SANDBOX_READ_ONLY`).
fn sandbox_python(config: &SandboxConfig) -> Result<PathBuf, JudgeError> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = std::env::var_os("CRUCIBLE_SANDBOX_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.extend(["/usr/bin/python3", "/bin/python3"].map(PathBuf::from));
    let found = FOUND.get_or_init(|| {
        for py in candidates {
            if !py.exists() {
                continue;
            }
            tried.push(py.display().to_string());
            let Ok(sb) = Sandbox::new(config) else {
                continue;
            };
            let argv = [py.display().to_string(), "-c".into(), "print(6*7)".into()];
            if sb
                .run(&argv, b"")
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "42")
            {
                return Some(py);
            }
        }
        None
    });
    found
        .clone()
        .ok_or_else(|| JudgeError::NoPython(tried.join(", ")))
}

/// Runs solutions against problems.
pub struct Judge {
    config: SandboxConfig,
    python: PathBuf,
    compile_limits: Limits,
}

impl Judge {
    /// A judge with these sandbox settings; fails when an isolation layer is missing (unless the
    /// config allows it) or no usable Python exists.
    pub fn new(config: SandboxConfig) -> Result<Judge, JudgeError> {
        config.isolation()?;
        let python = sandbox_python(&config)?;
        let compile_limits = Limits {
            cpu_seconds: 30,
            wall: Duration::from_secs(60),
            memory_bytes: 4 << 30,
            max_processes: 64,
            max_output_bytes: 1 << 20,
            max_file_bytes: 256 << 20,
        };
        Ok(Judge {
            config,
            python,
            compile_limits,
        })
    }

    /// True when C++ solutions can be judged here.
    pub fn has_cpp() -> bool {
        std::process::Command::new("g++")
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Judges `solution` on every test of `problem`.
    pub fn judge(
        &self,
        problem: &CodeProblem,
        solution: &Solution,
    ) -> Result<JudgeReport, JudgeError> {
        let started = Instant::now();
        let sandbox = Sandbox::new(&self.config)?;
        let mut compile_output = None;
        let program: Vec<String> = match solution.language {
            Language::Python => {
                sandbox.write_file(
                    "solution.py",
                    format!("{}{}", problem.prelude, solution.source).as_bytes(),
                )?;
                vec![self.python.display().to_string(), "solution.py".into()]
            }
            Language::Cpp => {
                if !Self::has_cpp() {
                    return Err(JudgeError::NoCompiler);
                }
                if problem
                    .tests
                    .iter()
                    .any(|t| matches!(t, TestCase::Call { .. }))
                {
                    return Err(JudgeError::CallTestNeedsPython(problem.id.clone()));
                }
                sandbox.write_file("solution.cpp", solution.source.as_bytes())?;
                let argv: Vec<String> =
                    ["g++", "-O2", "-std=c++17", "-o", "solution", "solution.cpp"]
                        .map(String::from)
                        .to_vec();
                let out =
                    sandbox.run_with(&argv, b"", &self.compile_limits, WorkDirAccess::Writable)?;
                if out.exit != super::sandbox::Exit::Code(0) || out.timed_out {
                    let text = tail(&out.stderr, 4000);
                    let failed = TestResult {
                        verdict: Verdict::CompileError,
                        wall: Duration::ZERO,
                        stderr_tail: text.clone(),
                    };
                    return Ok(JudgeReport {
                        tests: vec![failed; problem.tests.len()],
                        compile_output: Some(text),
                        wall: started.elapsed(),
                    });
                }
                compile_output = Some(tail(&out.stderr, 4000));
                vec!["./solution".into()]
            }
        };
        let mut tests = Vec::with_capacity(problem.tests.len());
        for test in &problem.tests {
            tests.push(self.run_test(&sandbox, &program, solution.language, test, problem)?);
        }
        Ok(JudgeReport {
            tests,
            compile_output,
            wall: started.elapsed(),
        })
    }

    fn run_test(
        &self,
        sandbox: &Sandbox,
        program: &[String],
        language: Language,
        test: &TestCase,
        problem: &CodeProblem,
    ) -> Result<TestResult, JudgeError> {
        let (out, verdict) = match test {
            TestCase::Stdio { input, output } => {
                let out = sandbox.run(program, input.as_bytes())?;
                let verdict = failure_verdict(&out).unwrap_or_else(|| match out.exit {
                    super::sandbox::Exit::Code(0)
                        if outputs_match(&String::from_utf8_lossy(&out.stdout), output) =>
                    {
                        Verdict::Passed
                    }
                    super::sandbox::Exit::Code(0) => Verdict::WrongAnswer,
                    _ => Verdict::RuntimeError,
                });
                (out, verdict)
            }
            TestCase::Call { code } => {
                if language != Language::Python {
                    return Err(JudgeError::CallTestNeedsPython(problem.id.clone()));
                }
                sandbox.write_file("test.py", code.as_bytes())?;
                let marker = random_marker();
                let argv = [self.python.display().to_string(), "-".into()];
                let out = sandbox.run(&argv, call_runner(&marker).as_bytes())?;
                let stdout = String::from_utf8_lossy(&out.stdout);
                let reported = stdout
                    .lines()
                    .rev()
                    .find_map(|l| l.strip_prefix(&format!("{marker}:")))
                    .map(str::to_string);
                let verdict = match reported.as_deref() {
                    Some("pass") => Verdict::Passed,
                    Some("wrong") => Verdict::WrongAnswer,
                    Some("memory") => Verdict::MemoryLimit,
                    _ => failure_verdict(&out).unwrap_or(Verdict::RuntimeError),
                };
                (out, verdict)
            }
        };
        Ok(TestResult {
            verdict,
            wall: out.wall,
            stderr_tail: tail(&out.stderr, 800),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_comparison_is_whitespace_and_float_tolerant() {
        assert!(outputs_match("1 2\n3\n", "1 2 3"));
        assert!(outputs_match("5 2 1 3 4 \n", "5 2 1 3 4\n"));
        assert!(outputs_match("0.3333333", "0.333333333"));
        assert!(!outputs_match("0.34", "0.33"));
        assert!(!outputs_match("1 2", "1 2 3"));
        assert!(!outputs_match("10", "10.5"));
        assert!(!outputs_match("YES", "NO"));
    }

    #[test]
    fn code_is_taken_from_the_last_fence() {
        let s = Solution::from_completion(
            "text\n```python\nprint(1)\n```\nmore\n```cpp\nint main(){}\n```\n",
        );
        assert_eq!(
            (s.language, s.source.as_str()),
            (Language::Cpp, "int main(){}\n")
        );
        let s = Solution::from_completion("print(2)");
        assert_eq!(
            (s.language, s.source.as_str()),
            (Language::Python, "print(2)")
        );
    }
}
