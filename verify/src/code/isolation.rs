//! The isolation layers of the code sandbox: which ones this machine gives us, and the
//! bubblewrap view of the host that a judged program gets.
//!
//! Why refuse rather than degrade: a judged program is untrusted code. Running it with a layer
//! silently missing (no private filesystem, say) hands it the Postgres socket, the checkpoints and
//! the datasets. So every layer is required unless the operator opts out explicitly with
//! [`ALLOW_MISSING_LAYERS_ENV`] (or [`crate::code::SandboxConfig::allow_missing_layers`]).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use nix::unistd::Uid;
use serde::{Deserialize, Serialize};

/// Set to `1` to run untrusted code even when an isolation layer is missing (each missing layer
/// is logged). Meant for development machines without root or bubblewrap, never for shared ones.
pub const ALLOW_MISSING_LAYERS_ENV: &str = "CRUCIBLE_SANDBOX_ALLOW_MISSING_LAYERS";

/// Overrides the bubblewrap binary (default: `bwrap` found on `PATH`).
pub const BWRAP_ENV: &str = "CRUCIBLE_BWRAP";

/// Extra host paths (colon-separated) the program may read, e.g. an interpreter outside `/usr`.
pub const READ_ONLY_ENV: &str = "CRUCIBLE_SANDBOX_READ_ONLY";

/// One isolation layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// A private filesystem view (bubblewrap): only the interpreters' and compilers' files,
    /// read-only, a private `/tmp`, no host sockets, `/run`, home, project or data folders.
    Filesystem,
    /// A private network namespace: no interfaces but an empty loopback, no abstract sockets.
    Network,
    /// A private PID namespace: the host's processes are invisible and every process of the run
    /// dies with it, even ones that left our process group.
    Pid,
    /// A dedicated unprivileged uid per run (needs root); makes `RLIMIT_NPROC` effective.
    DedicatedUid,
    /// CPU, address-space, file-size, open-file and process limits (`prlimit`).
    Rlimits,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Filesystem => "a private filesystem (bubblewrap)",
            Layer::Network => "a network namespace",
            Layer::Pid => "a PID namespace",
            Layer::DedicatedUid => "a dedicated uid (run as root)",
            Layer::Rlimits => "resource limits (prlimit)",
        })
    }
}

/// Which isolation layers this machine gives us, probed by running each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isolation {
    /// bubblewrap starts a program in a private filesystem view.
    pub private_filesystem: bool,
    /// A private network namespace (inside bubblewrap).
    pub network_namespace: bool,
    /// A private PID namespace (inside bubblewrap).
    pub pid_namespace: bool,
    /// Runs under a dedicated unprivileged uid (needs root); enables RLIMIT_NPROC.
    pub dedicated_uid: bool,
    /// `prlimit` is available (CPU, memory, file-size, process limits).
    pub rlimits: bool,
}

impl Isolation {
    /// Probes the machine with this bubblewrap binary; later calls with the same path return the
    /// cached answer.
    pub fn detect(bwrap: &Path) -> Isolation {
        static DETECTED: OnceLock<Mutex<HashMap<PathBuf, Isolation>>> = OnceLock::new();
        let cache = DETECTED.get_or_init(Default::default);
        if let Some(iso) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(bwrap) {
            return *iso;
        }
        let iso = Isolation::probe(bwrap);
        if !iso.missing().is_empty() {
            tracing::warn!(isolation = ?iso, bwrap = %bwrap.display(), "code sandbox layers missing on this machine");
        }
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(bwrap.to_path_buf(), iso);
        iso
    }

    fn probe(bwrap: &Path) -> Isolation {
        let view = host_view(&default_read_only());
        let in_bwrap = |extra: &[&str], program: &[&str]| {
            let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            args.extend(view.iter().cloned());
            args.push("--".into());
            args.extend(program.iter().map(|s| s.to_string()));
            tool_works(bwrap.as_os_str(), &args)
        };
        let private_filesystem = in_bwrap(&[], &["true"]);
        let setpriv = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--no-new-privs",
            "true",
        ];
        Isolation {
            private_filesystem,
            network_namespace: private_filesystem && in_bwrap(&["--unshare-net"], &["true"]),
            pid_namespace: private_filesystem && in_bwrap(&["--unshare-pid"], &["true"]),
            dedicated_uid: Uid::effective().is_root()
                && if private_filesystem {
                    in_bwrap(&[], &setpriv)
                } else {
                    tool_works(setpriv[0].as_ref(), &setpriv[1..])
                },
            rlimits: tool_works("prlimit".as_ref(), &["--nofile=64", "true"]),
        }
    }

    /// The layers this machine lacks, in a fixed order.
    pub fn missing(&self) -> Vec<Layer> {
        [
            (self.private_filesystem, Layer::Filesystem),
            (self.network_namespace, Layer::Network),
            (self.pid_namespace, Layer::Pid),
            (self.dedicated_uid, Layer::DedicatedUid),
            (self.rlimits, Layer::Rlimits),
        ]
        .into_iter()
        .filter(|(present, _)| !present)
        .map(|(_, layer)| layer)
        .collect()
    }
}

fn tool_works(program: &std::ffi::OsStr, args: &[impl AsRef<std::ffi::OsStr>]) -> bool {
    Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", SANDBOX_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `PATH` inside the sandbox (and for the probes).
pub(crate) const SANDBOX_PATH: &str = "/usr/bin:/bin";

/// The bubblewrap binary to use: `$CRUCIBLE_BWRAP`, else `bwrap` on this process's `PATH`
/// (resolved now, so a test can hide it with a `PATH` of its own), else the bare name.
pub(crate) fn default_bwrap() -> PathBuf {
    if let Some(b) = std::env::var_os(BWRAP_ENV) {
        return PathBuf::from(b);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("bwrap"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("bwrap"))
}

/// Host paths the program may read: `/usr` (interpreters, compilers, their libraries and
/// headers; `/usr/local` is hidden, see [`MASKED`]), the dynamic loader's cache, and
/// `$CRUCIBLE_SANDBOX_READ_ONLY`.
pub(crate) fn default_read_only() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = ["/usr", "/etc/ld.so.cache"].map(PathBuf::from).to_vec();
    if let Some(extra) = std::env::var_os(READ_ONLY_ENV) {
        paths.extend(std::env::split_paths(&extra).filter(|p| p.is_absolute()));
    }
    paths
}

/// Folders inside a read-only path that are covered again: `/usr/local` holds locally installed
/// tools and their configuration (an `npmrc` with a token, a copy of the project), not the
/// distribution's interpreters.
const MASKED: [&str; 1] = ["/usr/local"];

/// Top-level folders that are links into `/usr` on merged-/usr systems (or real folders on older
/// ones): recreated as the same links, or bound read-only.
const ROOT_LINKS: [&str; 6] = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// Size of the private `/tmp` and `/dev/shm` (tmpfs pages are not counted by RLIMIT_AS).
const SCRATCH_BYTES: u64 = 64 << 20;

/// The bubblewrap arguments that build the program's view of the host: `read_only` paths bound
/// read-only (a path that does not exist is skipped), [`MASKED`] folders covered, fresh `/proc`
/// and `/dev`, and a private, size-capped `/tmp` and `/dev/shm`. Nothing else of the host exists
/// inside: no `/run` or `/var` (so no Postgres socket), no `/etc`, `/home`, `/root` or `/work`.
pub(crate) fn host_view(read_only: &[PathBuf]) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |a: &[&str]| args.extend(a.iter().map(|s| s.to_string()));
    for top in ROOT_LINKS {
        match std::fs::read_link(top) {
            Ok(target) => push(&["--symlink", &target.to_string_lossy(), top]),
            Err(_) if Path::new(top).is_dir() => push(&["--ro-bind", top, top]),
            Err(_) => {}
        }
    }
    for path in read_only {
        let p = path.to_string_lossy();
        push(&["--ro-bind-try", &p, &p]);
        for masked in MASKED {
            if Path::new(masked).starts_with(path) && Path::new(masked).is_dir() {
                push(&["--perms", "0755", "--tmpfs", masked]);
            }
        }
    }
    let size = SCRATCH_BYTES.to_string();
    push(&["--proc", "/proc", "--dev", "/dev"]);
    for scratch in ["/tmp", "/dev/shm"] {
        push(&["--perms", "1777", "--size", &size, "--tmpfs", scratch]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_hides_usr_local_and_binds_nothing_else_writable() {
        let view = host_view(&[PathBuf::from("/usr"), PathBuf::from("/opt/py")]);
        let joined = view.join(" ");
        assert!(joined.contains("--ro-bind-try /usr /usr"));
        assert!(joined.contains("--ro-bind-try /opt/py /opt/py"));
        if Path::new("/usr/local").is_dir() {
            let usr = joined.find("/usr /usr").unwrap();
            let mask = joined
                .find("--tmpfs /usr/local")
                .expect("/usr/local is masked");
            assert!(mask > usr, "the mask comes after the bind it covers");
        }
        assert!(!view.iter().any(|a| a == "--bind" || a == "--dev-bind"));
        for hidden in ["/run", "/var", "/etc", "/home", "/root", "/work"] {
            assert!(!view.iter().any(|a| a == hidden), "{hidden} is in the view");
        }
    }

    #[test]
    fn missing_layers_are_listed_in_order() {
        let iso = Isolation {
            private_filesystem: false,
            network_namespace: false,
            pid_namespace: true,
            dedicated_uid: true,
            rlimits: false,
        };
        assert_eq!(
            iso.missing(),
            vec![Layer::Filesystem, Layer::Network, Layer::Rlimits]
        );
    }
}
