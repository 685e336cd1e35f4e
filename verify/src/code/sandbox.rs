//! Running an untrusted program with limits, for judging code.
//!
//! Why these layers: bubblewrap (`bwrap`) gives the program a private filesystem view — only the
//! interpreters' and compilers' files, read-only, a private `/tmp`, and nothing else of the host:
//! no sockets (the Postgres socket under `/run` included), no home, project, checkpoint or data
//! folders — plus a network namespace (no network, no abstract unix sockets) and a PID namespace
//! (when its first process dies the kernel kills every process in it, even ones that left our
//! process group). Inside it, `setpriv` drops to a dedicated unprivileged uid per run
//! (`RLIMIT_NPROC` then caps that uid's processes — it is not enforced for root) and `prlimit`
//! sets CPU-time, address-space, file-size, open-file and process limits; a `sh` shim turns death
//! by signal into exit code 128+N so the verdict can tell a CPU limit from a crash. We add a fresh
//! working directory (read-only to the program, writable for a compiler), an output cap, a
//! wall-clock deadline and `killpg(SIGKILL)` of the whole process group.
//!
//! Every layer is required: [`SandboxConfig::isolation`] refuses with
//! [`SandboxError::MissingLayers`] when the machine lacks one, unless the operator opted out
//! (see [`super::isolation`]).

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Gid, Pid, Uid, chown};
use serde::{Deserialize, Serialize};

use super::isolation::{
    ALLOW_MISSING_LAYERS_ENV, Isolation, Layer, SANDBOX_PATH, default_bwrap, default_read_only,
    host_view,
};

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
    /// The machine lacks isolation layers, so untrusted code is not run at all.
    #[error(
        "sandbox: refusing to run untrusted code without {} (bubblewrap: {bwrap}); install \
         bubblewrap (Debian: apt-get install bubblewrap) and run the worker as root, or set \
         {ALLOW_MISSING_LAYERS_ENV}=1 to run with the layers that exist",
        list(.missing)
    )]
    MissingLayers { missing: Vec<Layer>, bwrap: String },
}

fn list(layers: &[Layer]) -> String {
    layers
        .iter()
        .map(Layer::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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

/// Limits plus how the program is isolated.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SandboxConfig {
    pub limits: Limits,
    /// The bubblewrap binary: `$CRUCIBLE_BWRAP`, else `bwrap` on `PATH`.
    pub bwrap: PathBuf,
    /// Host paths the program may read (read-only); nothing else of the host is visible.
    /// Default `/usr` (without `/usr/local`), `/etc/ld.so.cache` and `$CRUCIBLE_SANDBOX_READ_ONLY`.
    pub read_only: Vec<PathBuf>,
    /// Run even when a layer is missing (default: `$CRUCIBLE_SANDBOX_ALLOW_MISSING_LAYERS=1`).
    pub allow_missing_layers: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            limits: Limits::default(),
            bwrap: default_bwrap(),
            read_only: default_read_only(),
            allow_missing_layers: std::env::var(ALLOW_MISSING_LAYERS_ENV)
                .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
        }
    }
}

impl SandboxConfig {
    /// The layers this machine gives; an error naming the missing ones unless the operator
    /// opted out ([`SandboxConfig::allow_missing_layers`]).
    pub fn isolation(&self) -> Result<Isolation, SandboxError> {
        let iso = Isolation::detect(&self.bwrap);
        let missing = iso.missing();
        if missing.is_empty() {
            return Ok(iso);
        }
        if self.allow_missing_layers {
            // Isolation::detect already warned once; this runs for every sandbox.
            tracing::debug!(missing = %list(&missing), "{ALLOW_MISSING_LAYERS_ENV}: running untrusted code with layers missing");
            return Ok(iso);
        }
        Err(SandboxError::MissingLayers {
            missing,
            bwrap: self.bwrap.display().to_string(),
        })
    }
}

/// First uid used for sandbox runs (one uid per concurrent run, so process limits do not mix).
const UID_BASE: u32 = 61_000;
/// Distinct uids cycled through.
const UID_SLOTS: u32 = 512;
static NEXT_SLOT: AtomicU32 = AtomicU32::new(0);

/// Where the working directory appears inside the private filesystem.
const INNER_WORKDIR: &str = "/tmp/work";

/// Whether a run may write into the working directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkDirAccess {
    /// Judged programs: they read their files and write scratch data to the private `/tmp`
    /// (size-capped), so they cannot fill the host's disk.
    ReadOnly,
    /// A compiler writing the binary the tests then run.
    Writable,
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

/// A fresh working directory plus limits; each [`Sandbox::run`] is one isolated process tree.
pub struct Sandbox {
    limits: Limits,
    dir: tempfile::TempDir,
    uid: Option<u32>,
    isolation: Isolation,
    bwrap: PathBuf,
    /// The bubblewrap arguments of the host view (see [`host_view`]).
    view: Vec<String>,
}

impl Sandbox {
    /// Creates the working directory (owned by the sandbox uid when there is one); refuses when
    /// the machine lacks an isolation layer ([`SandboxConfig::isolation`]).
    pub fn new(config: &SandboxConfig) -> Result<Sandbox, SandboxError> {
        let isolation = config.isolation()?;
        let dir = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(sandbox_root()?)
            .map_err(SandboxError::WorkDir)?;
        let uid = isolation
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
        Ok(Sandbox {
            limits: config.limits.clone(),
            dir,
            uid,
            isolation,
            bwrap: config.bwrap.clone(),
            view: host_view(&config.read_only),
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

    fn wrapped(&self, argv: &[String], limits: &Limits, access: WorkDirAccess) -> Vec<String> {
        let iso = &self.isolation;
        let mut cmd: Vec<String> = Vec::new();
        let mut push = |a: &[&str]| cmd.extend(a.iter().map(|s| s.to_string()));
        if iso.private_filesystem {
            push(&[
                &self.bwrap.to_string_lossy(),
                "--die-with-parent",
                "--new-session",
                "--unshare-ipc",
                "--unshare-uts",
                "--unshare-cgroup-try",
            ]);
            if iso.network_namespace {
                push(&["--unshare-net"]);
            }
            if iso.pid_namespace {
                push(&["--unshare-pid"]);
            }
            cmd.extend(self.view.iter().cloned());
            let bind = match access {
                WorkDirAccess::ReadOnly => "--ro-bind",
                WorkDirAccess::Writable => "--bind",
            };
            let dir = self.dir.path().to_string_lossy();
            let mut push = |a: &[&str]| cmd.extend(a.iter().map(|s| s.to_string()));
            push(&[bind, &dir, INNER_WORKDIR, "--chdir", INNER_WORKDIR, "--"]);
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

    /// Runs `argv` in the (read-only) working directory with `stdin` as input, under this
    /// sandbox's limits.
    pub fn run(&self, argv: &[String], stdin: &[u8]) -> Result<RunOutcome, SandboxError> {
        self.run_with(argv, stdin, &self.limits, WorkDirAccess::ReadOnly)
    }

    /// Like [`Sandbox::run`] with other limits and access (a compiler needs more memory than the
    /// program, and writes its output into the working directory).
    pub fn run_with(
        &self,
        argv: &[String],
        stdin: &[u8],
        limits: &Limits,
        access: WorkDirAccess,
    ) -> Result<RunOutcome, SandboxError> {
        let full = self.wrapped(argv, limits, access);
        let dir = self.dir.path();
        // Inside the private filesystem /tmp is the run's own tmpfs; without it, the working folder.
        let scratch = if self.isolation.private_filesystem {
            Path::new("/tmp")
        } else {
            dir
        };
        let started = Instant::now();
        let mut child = Command::new(&full[0])
            .args(&full[1..])
            .current_dir(dir)
            .env_clear()
            .env("PATH", SANDBOX_PATH)
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
