//! Running an untrusted program with limits, for judging code.
//!
//! Why these layers (all from util-linux, no `unsafe`): `unshare` gives a network namespace (no
//! network) and a PID namespace (when its first process dies the kernel kills every process in it,
//! even ones that left our process group); `setpriv` drops to a dedicated unprivileged uid per run
//! (the grader's files are unreadable, `RLIMIT_NPROC` then caps that uid's processes — it is not
//! enforced for root); `prlimit` sets CPU-time, address-space, file-size, open-file and process
//! limits; a `sh` shim turns death by signal into exit code 128+N so the verdict can tell a CPU
//! limit from a crash. We add a fresh temporary working directory, an output cap, a wall-clock
//! deadline and `killpg(SIGKILL)` of the whole process group. [`Isolation::detect`] reports which
//! layers this machine supports; missing ones are logged, not silently assumed.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Gid, Pid, Uid, chown};
use serde::{Deserialize, Serialize};

/// Errors of the sandbox itself (never of the judged program).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox: cannot create the working directory: {0}")]
    WorkDir(std::io::Error),
    #[error("sandbox: cannot write {path}: {source}")]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sandbox: cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("sandbox: waiting for the program failed: {0}")]
    Wait(std::io::Error),
    #[error("sandbox: file name {0:?} must be a plain name inside the working directory")]
    BadFileName(String),
}

/// Limits for one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Limits {
    /// CPU seconds (RLIMIT_CPU); the hard limit is one second more.
    pub cpu_seconds: u64,
    /// Wall-clock limit; the process group is killed when it passes.
    pub wall: Duration,
    /// Address-space limit in bytes (RLIMIT_AS).
    pub memory_bytes: u64,
    /// Processes of the sandbox uid (RLIMIT_NPROC); stops fork bombs.
    pub max_processes: u64,
    /// Bytes kept from stdout and from stderr; more output kills the run.
    pub max_output_bytes: usize,
    /// Largest file the program may write (RLIMIT_FSIZE).
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_seconds: 4,
            wall: Duration::from_secs(8),
            memory_bytes: 1 << 30,
            max_processes: 32,
            max_output_bytes: 1 << 20,
            max_file_bytes: 16 << 20,
        }
    }
}

/// Limits plus the host folders hidden from the program.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SandboxConfig {
    pub limits: Limits,
    /// Host folders covered by an empty tmpfs inside the run's mount namespace, so a program cannot
    /// read the grader's files (test data with expected outputs, the repository, home folders).
    /// Folders that hold the working directory, or do not exist, are left alone.
    pub hidden_paths: Vec<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let mut hidden_paths: Vec<PathBuf> =
            ["/work", "/home", "/root", "/srv", "/mnt", "/media", "/data"]
                .iter()
                .map(PathBuf::from)
                .collect();
        if let Some(d) = std::env::var_os("CRUCIBLE_DATA_DIR") {
            hidden_paths.push(PathBuf::from(d));
        }
        if let Ok(d) = std::env::current_dir() {
            hidden_paths.push(d);
        }
        SandboxConfig {
            limits: Limits::default(),
            hidden_paths,
        }
    }
}

/// Which isolation layers this machine gives us.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isolation {
    /// A private network namespace (no interfaces but loopback).
    pub network_namespace: bool,
    /// A private PID namespace: every process of the run dies with it.
    pub pid_namespace: bool,
    /// Runs under a dedicated unprivileged uid (needs root); enables RLIMIT_NPROC.
    pub dedicated_uid: bool,
    /// `prlimit` is available (CPU, memory, file-size, process limits).
    pub rlimits: bool,
}

/// First uid used for sandbox runs (one uid per concurrent run, so process limits do not mix).
const UID_BASE: u32 = 61_000;
/// Distinct uids cycled through.
const UID_SLOTS: u32 = 512;
static NEXT_SLOT: AtomicU32 = AtomicU32::new(0);

fn tool_works(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

const NAMESPACES: [&str; 6] = [
    "unshare",
    "--net",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount-proc",
];
const USER_NAMESPACE: [&str; 2] = ["--user", "--map-root-user"];

impl Isolation {
    /// Probes the machine once; later calls return the cached answer.
    pub fn detect() -> &'static Isolation {
        static DETECTED: OnceLock<Isolation> = OnceLock::new();
        DETECTED.get_or_init(|| {
            let root = Uid::effective().is_root();
            let mut probe: Vec<&str> = NAMESPACES.to_vec();
            if !root {
                probe.splice(1..1, USER_NAMESPACE);
            }
            probe.push("true");
            let namespaces = tool_works(&probe);
            let dedicated_uid = root
                && tool_works(&["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs", "true"]);
            let rlimits = tool_works(&["prlimit", "--nofile=64", "true"]);
            let iso = Isolation {
                network_namespace: namespaces,
                pid_namespace: namespaces,
                dedicated_uid,
                rlimits,
            };
            if !(iso.network_namespace && iso.dedicated_uid && iso.rlimits) {
                tracing::warn!(isolation = ?iso, "code sandbox runs with reduced isolation on this machine");
            }
            iso
        })
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exit {
    /// Normal exit with this code (the `sh` shim reports death by signal N as 128+N).
    Code(i32),
    /// Killed by a signal we did not shim (e.g. our own SIGKILL on timeout).
    Signal(i32),
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub exit: Exit,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The wall-clock limit passed and the group was killed.
    pub timed_out: bool,
    /// Output passed the cap and the group was killed.
    pub output_exceeded: bool,
    pub wall: Duration,
}

impl RunOutcome {
    /// The signal that ended the program, if any (shimmed or not).
    pub fn signal(&self) -> Option<i32> {
        match self.exit {
            Exit::Signal(s) => Some(s),
            Exit::Code(c) if c > 128 && c < 128 + 65 => Some(c - 128),
            Exit::Code(_) => None,
        }
    }
}

/// The parent of all working directories: owned by us and not writable by others, so a program
/// cannot write next to its own folder (`../x`).
fn sandbox_root() -> Result<PathBuf, SandboxError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let root = std::env::temp_dir().join(format!("crucible-sandbox-{}", Uid::effective()));
    match std::fs::DirBuilder::new().mode(0o711).create(&root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(SandboxError::WorkDir(e)),
    }
    let meta = std::fs::symlink_metadata(&root).map_err(SandboxError::WorkDir)?;
    if !meta.is_dir()
        || meta.uid() != Uid::effective().as_raw()
        || meta.permissions().mode() & 0o022 != 0
    {
        return Err(SandboxError::WorkDir(std::io::Error::other(format!(
            "{} is not a private folder of ours",
            root.display()
        ))));
    }
    Ok(root)
}

/// Shared scratch folders that get a private, empty, size-capped tmpfs.
const SCRATCH: [&str; 2] = ["/var/tmp", "/dev/shm"];

/// Where the working directory appears inside the namespace (bind-mounted into the private /tmp).
const INNER_WORKDIR: &str = "/tmp/work";

/// Builds the `sh` script run as namespace root before privileges are dropped: an empty tmpfs over
/// each folder to hide (paths with a quote, missing folders and ancestors of the working directory
/// are skipped), a private tmpfs over the shared scratch folders and over /tmp, with the working
/// directory (still reachable as `.`) bind-mounted at /tmp/work; then `exec "$@"`. If /tmp cannot
/// be replaced the run goes on in place; if the bind fails after that, the run stops (exit 125).
fn hide_script(hidden: &[PathBuf], workdir: &Path) -> String {
    let mut script = String::new();
    for s in SCRATCH {
        if Path::new(s).is_dir() {
            script.push_str(&format!(
                "mount -t tmpfs -o size=64m,mode=1777 crucible-scratch {s} 2>/dev/null; "
            ));
        }
    }
    script.push_str(&format!(
        "if mount -t tmpfs -o size=64m,mode=1777 crucible-scratch /tmp 2>/dev/null; then \
         mkdir -p {INNER_WORKDIR} && mount --no-canonicalize --bind . {INNER_WORKDIR} && cd {INNER_WORKDIR} || exit 125; fi; "
    ));
    for p in hidden {
        let Some(s) = p.to_str() else { continue };
        if s.contains('\'') || !p.is_dir() || workdir.starts_with(p) || !p.is_absolute() {
            continue;
        }
        script.push_str(&format!(
            "mount -t tmpfs -o size=16k,mode=755 crucible-hidden '{s}' 2>/dev/null; "
        ));
    }
    script.push_str("exec \"$@\"");
    script
}

/// A fresh working directory plus limits; each [`Sandbox::run`] is one isolated process tree.
pub struct Sandbox {
    limits: Limits,
    dir: tempfile::TempDir,
    uid: Option<u32>,
    /// The `sh` script run as namespace root before dropping privileges: hides host folders.
    hide_script: String,
}

impl Sandbox {
    /// Creates the working directory (owned by the sandbox uid when there is one).
    pub fn new(config: &SandboxConfig) -> Result<Sandbox, SandboxError> {
        let dir = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(sandbox_root()?)
            .map_err(SandboxError::WorkDir)?;
        let uid = Isolation::detect()
            .dedicated_uid
            .then(|| UID_BASE + NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % UID_SLOTS);
        if let Some(uid) = uid {
            chown(
                dir.path(),
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(uid)),
            )
            .map_err(|e| SandboxError::WorkDir(e.into()))?;
        }
        let hide_script = hide_script(&config.hidden_paths, dir.path());
        Ok(Sandbox {
            limits: config.limits.clone(),
            dir,
            uid,
            hide_script,
        })
    }

    /// The working directory the program runs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The limits of this sandbox.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Writes a file into the working directory, readable by the sandbox uid.
    pub fn write_file(&self, name: &str, contents: &[u8]) -> Result<PathBuf, SandboxError> {
        if name.contains('/') || name.starts_with('.') || name.is_empty() {
            return Err(SandboxError::BadFileName(name.to_string()));
        }
        let path = self.dir.path().join(name);
        let err = |source| SandboxError::WriteFile {
            path: path.clone(),
            source,
        };
        std::fs::write(&path, contents).map_err(err)?;
        if let Some(uid) = self.uid {
            chown(&path, Some(Uid::from_raw(uid)), Some(Gid::from_raw(uid)))
                .map_err(|e| err(e.into()))?;
        }
        Ok(path)
    }

    fn wrapped(&self, argv: &[String], limits: &Limits) -> Vec<String> {
        let iso = Isolation::detect();
        let mut cmd: Vec<String> = Vec::new();
        if iso.pid_namespace {
            cmd.extend(NAMESPACES.iter().map(|s| s.to_string()));
            if self.uid.is_none() {
                cmd.splice(1..1, USER_NAMESPACE.iter().map(|s| s.to_string()));
            }
            cmd.extend([
                "/bin/sh".into(),
                "-c".into(),
                self.hide_script.clone(),
                "sh".into(),
            ]);
        }
        if let Some(uid) = self.uid {
            cmd.extend([
                "setpriv".into(),
                format!("--reuid={uid}"),
                format!("--regid={uid}"),
                "--clear-groups".into(),
                "--no-new-privs".into(),
            ]);
        }
        if iso.rlimits {
            cmd.extend([
                "prlimit".into(),
                format!("--cpu={}:{}", limits.cpu_seconds, limits.cpu_seconds + 1),
                format!("--as={}", limits.memory_bytes),
                format!("--fsize={}", limits.max_file_bytes),
                "--nofile=128".into(),
                "--core=0".into(),
            ]);
            if self.uid.is_some() {
                cmd.push(format!("--nproc={}", limits.max_processes));
            }
            cmd.push("--".into());
        }
        cmd.extend([
            "/bin/sh".into(),
            "-c".into(),
            "\"$@\"; exit $?".into(),
            "sh".into(),
        ]);
        cmd.extend(argv.iter().cloned());
        cmd
    }

    /// Runs `argv` in the working directory with `stdin` as input, under this sandbox's limits.
    pub fn run(&self, argv: &[String], stdin: &[u8]) -> Result<RunOutcome, SandboxError> {
        self.run_with(argv, stdin, &self.limits)
    }

    /// Like [`Sandbox::run`] with other limits (e.g. a compiler needs more memory than the program).
    pub fn run_with(
        &self,
        argv: &[String],
        stdin: &[u8],
        limits: &Limits,
    ) -> Result<RunOutcome, SandboxError> {
        let full = self.wrapped(argv, limits);
        let dir = self.dir.path();
        // Inside the namespaces /tmp is the run's private tmpfs; without them, the working folder.
        let scratch = if Isolation::detect().pid_namespace {
            Path::new("/tmp")
        } else {
            dir
        };
        let started = Instant::now();
        let mut child = Command::new(&full[0])
            .args(&full[1..])
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", scratch)
            .env("TMPDIR", scratch)
            .env("LANG", "C.UTF-8")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONIOENCODING", "utf-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| SandboxError::Spawn {
                program: argv.join(" "),
                source,
            })?;
        let group = Pid::from_raw(child.id() as i32);
        let kill_group = move || {
            let _ = killpg(group, Signal::SIGKILL);
        };
        let flooded = Arc::new(AtomicBool::new(false));

        if let Some(mut input) = child.stdin.take() {
            let data = stdin.to_vec();
            std::thread::spawn(move || {
                let _ = input.write_all(&data);
            });
        }
        let (tx, rx) = mpsc::channel();
        for (is_stdout, pipe) in [
            (
                true,
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
            ),
            (
                false,
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
            ),
        ] {
            let Some(mut pipe) = pipe else { continue };
            let (tx, flooded, cap) = (tx.clone(), flooded.clone(), limits.max_output_bytes);
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if kept.len() + n > cap {
                                kept.extend_from_slice(&buf[..cap - kept.len()]);
                                flooded.store(true, Ordering::SeqCst);
                                kill_group();
                                break;
                            }
                            kept.extend_from_slice(&buf[..n]);
                        }
                    }
                }
                let _ = tx.send((is_stdout, kept));
            });
        }
        drop(tx);

        let deadline = started + limits.wall;
        let mut timed_out = false;
        let mut pause = Duration::from_micros(200);
        let status = loop {
            if let Some(status) = child.try_wait().map_err(SandboxError::Wait)? {
                break status;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                kill_group();
                break child.wait().map_err(SandboxError::Wait)?;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        };
        let wall = started.elapsed();
        // Stragglers left in the group (only possible without a PID namespace) die with it.
        kill_group();
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let grace = Instant::now() + Duration::from_secs(1);
        for _ in 0..2 {
            let left = grace.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((true, out)) => stdout = out,
                Ok((false, err)) => stderr = err,
                Err(_) => break,
            }
        }
        let exit = match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Code(-1),
        };
        Ok(RunOutcome {
            exit,
            stdout,
            stderr,
            timed_out,
            output_exceeded: flooded.load(Ordering::SeqCst),
            wall,
        })
    }
}
