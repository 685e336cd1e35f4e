//! Finding a Postgres for Crucible: `DATABASE_URL`, else the local server on 127.0.0.1:5432, else a
//! cluster Crucible starts itself with `initdb`/`pg_ctl` (as the `postgres` user when run as root).

use anyhow::{Context, Result, bail};
use sqlx::{Connection, PgConnection};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where to find the database; shared by every subcommand that needs one.
#[derive(clap::Args, Clone, Debug)]
pub struct DbArgs {
    /// Postgres URL; when absent Crucible looks on 127.0.0.1:5432, then starts its own cluster.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
}

/// The local server Crucible tries before starting its own.
const LOCAL_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The database Crucible creates on a found server.
const DATABASE_NAME: &str = "crucible";
/// Port of the cluster Crucible starts itself.
const OWN_CLUSTER_PORT: u16 = 55432;

impl DbArgs {
    /// The URL to use, starting a cluster if nothing else is there.
    pub async fn resolve(&self) -> Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        if let Some(url) = try_local(LOCAL_ADMIN_URL).await {
            tracing::info!("using the Postgres server on 127.0.0.1:5432");
            return Ok(url);
        }
        let own = format!("postgres://postgres@127.0.0.1:{OWN_CLUSTER_PORT}/postgres");
        if try_local(&own).await.is_none() {
            start_own_cluster()?;
        }
        try_local(&own)
            .await
            .context("started a Postgres cluster but cannot connect to it")
    }
}

/// Connects to `admin_url` and makes sure the `crucible` database exists; returns its URL.
async fn try_local(admin_url: &str) -> Option<String> {
    let connect = PgConnection::connect(admin_url);
    let mut conn = tokio::time::timeout(Duration::from_secs(3), connect)
        .await
        .ok()?
        .ok()?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(DATABASE_NAME)
            .fetch_one(&mut conn)
            .await
            .ok()?;
    if !exists {
        let created = sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {DATABASE_NAME}"
        )))
        .execute(&mut conn)
        .await;
        if let Err(e) = created {
            tracing::warn!(error = %e, "cannot create database {DATABASE_NAME}");
            return None;
        }
    }
    admin_url
        .rsplit_once('/')
        .map(|(base, _)| format!("{base}/{DATABASE_NAME}"))
}

/// Postgres server binaries: on PATH, or in Debian's versioned folder.
fn pg_bin(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path())
            .collect();
        versions.sort();
        versions
            .into_iter()
            .rev()
            .map(|v| v.join("bin").join(name))
            .find(|p| p.is_file())
    })
}

/// `$CRUCIBLE_HOME` or `~/.local/share/crucible`: where Crucible keeps its own cluster.
pub fn crucible_home() -> PathBuf {
    std::env::var_os("CRUCIBLE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/tmp"));
            home.join(".local/share/crucible")
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs a Postgres tool, as the `postgres` user when we are root (initdb refuses root).
fn run_pg(tool: &Path, args: &[&str], as_postgres: bool) -> Result<()> {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(tool);
        c
    } else {
        Command::new(tool)
    };
    let out = cmd
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", tool.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            tool.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn start_own_cluster() -> Result<()> {
    let (Some(initdb), Some(pg_ctl)) = (pg_bin("initdb"), pg_bin("pg_ctl")) else {
        bail!(
            "no Postgres found: DATABASE_URL is not set, nothing answers on 127.0.0.1:5432, and the server \
             binaries (initdb, pg_ctl) are not installed. Install them (Debian/Ubuntu: `apt-get install postgresql`) \
             or set DATABASE_URL."
        );
    };
    let dir = crucible_home().join("pg");
    let data = dir.join("data");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let as_postgres = is_root();
    if as_postgres {
        run_pg(
            Path::new("chown"),
            &["-R", "postgres", &dir.to_string_lossy()],
            false,
        )?;
    }
    if !data.join("PG_VERSION").exists() {
        tracing::info!(dir = %data.display(), "initialising a Postgres cluster for Crucible");
        let data_s = data.to_string_lossy();
        run_pg(
            &initdb,
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            as_postgres,
        )?;
    }
    let log = dir.join("postgres.log");
    let opts = format!(
        "-p {OWN_CLUSTER_PORT} -k {} -c listen_addresses=127.0.0.1",
        dir.display()
    );
    tracing::info!(
        port = OWN_CLUSTER_PORT,
        "starting Crucible's Postgres cluster"
    );
    run_pg(
        &pg_ctl,
        &[
            "-D",
            &data.to_string_lossy(),
            "-l",
            &log.to_string_lossy(),
            "-w",
            "-t",
            "60",
            "-o",
            &opts,
            "start",
        ],
        as_postgres,
    )
}
