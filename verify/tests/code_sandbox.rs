//! The code judge on real programs: hostile programs are contained with the right verdict and
//! leave nothing behind; canonical HumanEval / MBPP / LeetCode solutions pass their own tests.
//!
//! The hostile suite needs every isolation layer (root and bubblewrap; `scripts/test.sh` installs
//! bubblewrap) and fails without one. Dataset parts read `$CRUCIBLE_DATA_DIR` and skip when it is
//! unset.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crucible_verify::code::{
    ALLOW_MISSING_LAYERS_ENV, CodeProblem, Isolation, Judge, JudgeError, Language, Layer, Limits,
    Sandbox, SandboxConfig, SandboxError, Solution, TestCase, Verdict,
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

/// The judge under the tight limits, on a machine that must have every isolation layer: this
/// suite is the proof that they hold, so a missing one fails it rather than skipping a part.
fn strict_judge() -> Judge {
    let config = tight_config();
    let iso = Isolation::detect(&config.bwrap);
    eprintln!("isolation on this machine: {iso:?}");
    assert!(
        iso.missing().is_empty(),
        "the sandbox suite needs every layer (run as root with bubblewrap installed): missing {:?}",
        iso.missing()
    );
    Judge::new(config).expect("a Python 3 runs in the sandbox")
}

/// A Python list literal of these strings.
fn py_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{:?}", s.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}

/// A program that tries every attempt in `attempts` (Python expressions, each in its own
/// `try`), prints 6 when all of them raised, and otherwise prints (and reports on stderr) the
/// ones that worked — so an escape is a wrong answer with the evidence in the stderr tail.
fn escape_probe(setup: &str, attempts: &[String]) -> String {
    let mut src = format!("import os, socket, sys\n{setup}\nescaped = []\n");
    for (i, a) in attempts.iter().enumerate() {
        src.push_str(&format!(
            "try:\n    r = ({a})\n    escaped.append(({i}, {a:?}, repr(r)[:80]))\nexcept BaseException:\n    pass\n"
        ));
    }
    src.push_str(
        "print(6 if not escaped else escaped)\nif escaped: print(escaped, file=sys.stderr)\n",
    );
    src
}

fn judge_probe(judge: &Judge, src: &str) -> (Verdict, String) {
    let report = judge
        .judge(&stdio_problem("", "6\n"), &python(src))
        .expect("judge runs");
    (report.tests[0].verdict, report.tests[0].stderr_tail.clone())
}

#[test]
fn resource_hogs_get_their_verdicts_and_leave_nothing_behind() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let judge = strict_judge();
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
        verdict(&judge, &echo, "x = bytearray(30 << 30)"),
        Verdict::MemoryLimit,
        "one 30 GB allocation"
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
        verdict(&judge, &echo, "while True: print('x' * 100000)"),
        Verdict::OutputLimit,
        "stdout flood (10 GB if let run)"
    );
    assert_eq!(
        verdict(
            &judge,
            &echo,
            "import sys\nwhile True: sys.stderr.write('x' * 100000)"
        ),
        Verdict::OutputLimit,
        "stderr flood"
    );

    // Fork bomb, in a program that also tries to outlive the run in a new session.
    let bomb = "import os\nwhile True:\n    try:\n        if os.fork() == 0:\n            os.setsid()\n    except OSError:\n        pass";
    let v = verdict(&judge, &echo, bomb);
    assert!(
        matches!(v, Verdict::TimeLimit | Verdict::RuntimeError),
        "fork bomb verdict {v:?}"
    );
    assert_eq!(settle(), 0, "every process of the fork bomb is gone");

    // A double-forked daemon that would go on after the program's answer.
    let daemon = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(30)\n    os._exit(0)\nprint(6)";
    assert_eq!(verdict(&judge, &echo, daemon), Verdict::Passed);
    assert_eq!(settle(), 0, "the daemon died with its run");

    // Disk: one file past the file-size limit, and many files under it until the private /tmp
    // is full; the working folder is read-only. The host's disk sees none of it.
    assert_eq!(
        verdict(
            &judge,
            &echo,
            "with open('/tmp/big', 'wb') as f:\n    while True: f.write(b'x' * (1 << 20))"
        ),
        Verdict::RuntimeError,
        "a file past RLIMIT_FSIZE"
    );
    let fill = "n = 0\ntry:\n    for i in range(1000):\n        open(f'/tmp/f{i}', 'wb').write(b'x' * 1000000)\n        n += 1\nexcept OSError:\n    pass\ntry:\n    open('here.txt', 'w').write('x')\n    n = -1\nexcept OSError:\n    pass\nprint(6 if 0 < n < 100 else n)";
    assert_eq!(
        verdict(&judge, &echo, fill),
        Verdict::Passed,
        "the private /tmp is capped and the working folder is read-only"
    );
}

#[test]
fn nothing_of_the_host_is_reachable() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let judge = strict_judge();

    // Listeners of our own the program must not reach: TCP on loopback, a unix socket in a
    // folder anyone may enter, and an abstract unix socket.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp listener");
    tcp.set_nonblocking(true).unwrap();
    let port = tcp.local_addr().unwrap().port();
    let grader = tempfile::tempdir().expect("temp dir");
    let socket_path = grader.path().join("grader.sock");
    let unix = UnixListener::bind(&socket_path).expect("unix listener");
    unix.set_nonblocking(true).unwrap();
    let abstract_name = format!("crucible-sandbox-test-{}", std::process::id());
    let abstract_sock =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap())
            .expect("abstract listener");
    abstract_sock.set_nonblocking(true).unwrap();
    open_to_all(grader.path(), &socket_path);

    // Every unix socket of the host under /run, /var/run and /tmp (Postgres' among them when it
    // runs here), plus the Postgres socket paths by name.
    let mut sockets: Vec<String> = [
        "/var/run/postgresql/.s.PGSQL.5432",
        "/run/postgresql/.s.PGSQL.5432",
    ]
    .map(String::from)
    .to_vec();
    for root in ["/run", "/var/run", "/tmp"] {
        find_sockets(Path::new(root), 4, &mut sockets);
    }
    sockets.push(socket_path.display().to_string());
    eprintln!("{} host unix sockets tried", sockets.len());

    // Files of the project, the grader, the home folders and the system.
    let secret = grader.path().join("secret.txt");
    std::fs::write(&secret, "expected-output-42").expect("write secret");
    let crate_dir = std::env::current_dir().expect("cwd");
    let mut files: Vec<String> = [
        secret.clone(),
        crate_dir.join("Cargo.toml"),
        crate_dir.join("../Cargo.toml"),
        crate_dir.join("src/code/sandbox.rs"),
        PathBuf::from("/etc/shadow"),
        PathBuf::from("/etc/passwd"),
        PathBuf::from("/etc/hostname"),
        PathBuf::from("/usr/local/etc/npmrc"),
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect();
    if let Some(d) = std::env::var_os("CRUCIBLE_DATA_DIR") {
        files.push(PathBuf::from(d).display().to_string());
    }
    let folders = [
        "/work",
        "/root",
        "/home",
        "/run",
        "/var",
        "/srv",
        "/mnt",
        "/opt",
        "/data",
        "/usr/local/bin",
    ];

    let mut attempts: Vec<String> = Vec::new();
    for path in &sockets {
        attempts.push(format!("socket.socket(socket.AF_UNIX).connect({path:?})"));
    }
    attempts.push(format!(
        "socket.socket(socket.AF_UNIX).connect('\\0{abstract_name}')"
    ));
    for (host, p) in [("127.0.0.1", port), ("127.0.0.1", 5432), ("1.1.1.1", 53)] {
        attempts.push(format!(
            "socket.create_connection(({host:?}, {p}), timeout=2)"
        ));
    }
    for f in &files {
        attempts.push(format!("open({f:?}, 'rb').read(1)"));
        attempts.push(format!("os.listdir({f:?})"));
    }
    for d in folders {
        attempts.push(format!("os.listdir({d:?})"));
    }
    // The environment: ours is not inherited (the shell shim adds only PWD), and no host process
    // is visible in /proc.
    let allowed_env = py_list(&[
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONIOENCODING",
        "LC_CTYPE",
        "PWD",
    ]);
    attempts.push(format!(
        "[k for k in os.environ if k not in {allowed_env}] or fail()"
    ));
    let host_pid = std::process::id();
    attempts.push(format!("open('/proc/{host_pid}/environ', 'rb').read()"));
    attempts.push(
        "[p for p in os.listdir('/proc') if p.isdigit() and b'postgres' in cmdline(p)] or fail()"
            .into(),
    );
    let setup = "def fail():\n    raise RuntimeError('nothing')\n\
                 def cmdline(pid):\n    try:\n        return open(f'/proc/{pid}/cmdline', 'rb').read()\n    \
                 except OSError:\n        return b''";
    let probe = escape_probe(setup, &attempts);

    let (v, stderr) = judge_probe(&judge, &probe);
    assert_eq!(v, Verdict::Passed, "the sandbox let through: {stderr}");
    for (name, accepted) in [
        ("tcp", tcp.accept().is_ok()),
        ("unix", unix.accept().is_ok()),
        ("abstract", abstract_sock.accept().is_ok()),
    ] {
        assert!(
            !accepted,
            "the {name} listener was reached from the sandbox"
        );
    }

    // The same probe without the private filesystem and namespaces (the operator's opt-out)
    // reaches our sockets: the probe can see an escape, so its pass above means something.
    let weak = Judge::new(SandboxConfig {
        bwrap: PathBuf::from("/nonexistent/bwrap"),
        allow_missing_layers: true,
        ..tight_config()
    })
    .expect("an opted-out judge runs");
    let (v, stderr) = judge_probe(&weak, &probe);
    assert_eq!(v, Verdict::WrongAnswer, "{stderr}");
    assert!(
        abstract_sock.accept().is_ok(),
        "without a network namespace the abstract socket is reachable"
    );

    // Writing outside the working directory: the grader's folder, the parent folder, /tmp, /etc
    // and the repository. Writes are refused or land in the run's private tmpfs; none reaches
    // the host.
    let target = grader.path().join("escape.txt");
    let repo_file = crate_dir.join("escape.txt");
    let outside = [
        target.display().to_string(),
        "../escape.txt".into(),
        "/tmp/escape.txt".into(),
        "/etc/escape.txt".into(),
        repo_file.display().to_string(),
    ];
    let write = format!(
        "for p in {}:\n    try:\n        open(p, 'w').write('x')\n    except OSError:\n        pass\nprint(6)",
        py_list(&outside)
    );
    assert_eq!(
        verdict(&judge, &stdio_problem("", "6"), &write),
        Verdict::Passed
    );
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
}

/// Lets the sandbox uid enter `dir` and connect to `socket` (so only the sandbox's own walls
/// stop it, not file permissions).
fn open_to_all(dir: &Path, socket: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o777)).unwrap();
}

/// Unix sockets under `dir`, down to `depth` folders.
fn find_sockets(dir: &Path, depth: usize, out: &mut Vec<String>) {
    use std::os::unix::fs::FileTypeExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let Ok(t) = e.file_type() else { continue };
        if t.is_socket() {
            out.push(e.path().display().to_string());
        } else if t.is_dir() && depth > 0 {
            find_sockets(&e.path(), depth - 1, out);
        }
    }
}

#[test]
fn untrusted_code_is_refused_when_a_layer_is_missing() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let missing_bwrap = SandboxConfig {
        bwrap: PathBuf::from("/nonexistent/bwrap"),
        allow_missing_layers: false,
        ..tight_config()
    };
    let err = match Judge::new(missing_bwrap.clone()) {
        Ok(_) => panic!("a judge was built without bubblewrap"),
        Err(e) => e,
    };
    match &err {
        JudgeError::Sandbox(SandboxError::MissingLayers { missing, .. }) => {
            for layer in [Layer::Filesystem, Layer::Network, Layer::Pid] {
                assert!(missing.contains(&layer), "{layer:?} not reported: {err}");
            }
        }
        other => panic!("expected MissingLayers, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("bubblewrap") && message.contains(ALLOW_MISSING_LAYERS_ENV),
        "the failure says what to do: {message}"
    );
    assert!(
        matches!(
            Sandbox::new(&missing_bwrap),
            Err(SandboxError::MissingLayers { .. })
        ),
        "a bare sandbox refuses too"
    );
}

#[test]
fn early_exits_do_not_pass_call_tests() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let judge = strict_judge();
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
    assert_eq!(settle(), 0, "no sandbox process outlives its run");
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
