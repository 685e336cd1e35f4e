//! `crucible up`: everything needed to use Crucible on this machine, with nothing configured —
//! Postgres (found or started), the server with the dashboard, a local worker, and the shipped small
//! model registered so the built-in synthetic benchmark can be evaluated at once, and served over
//! the OpenAI API for the team's tokens.

use crate::cmd::serve;
use anyhow::{Context, Result};
use crucible_types::{ModelSource, RegisterModel};
use crucible_worker::WorkerConfig;
use crucible_worker::client::ServerClient;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The model `crucible up` registers, shipped in the repository.
const DEFAULT_MODEL: &str = "crucible-mimo-small";

/// Arguments of `crucible up`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub serve: serve::Args,
    /// Team of the token printed at start-up.
    #[arg(long, default_value = "default")]
    pub team: String,
    /// Folder of the default model (registered as `crucible-mimo-small`).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Benchmark files for the local worker.
    #[arg(long, env = "CRUCIBLE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Do not start a local worker.
    #[arg(long)]
    pub no_worker: bool,
    /// Where the shipped model is served over the OpenAI API (Crucible tokens of the team).
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub openai_bind: std::net::SocketAddr,
    /// Do not serve the shipped model over the OpenAI API.
    #[arg(long)]
    pub no_openai: bool,
}

/// The shipped model: `--model-dir`, else `models/crucible-mimo-small` under the working
/// directory, else next to the source tree this binary was built from.
fn default_model_dir(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = given {
        return Some(p.to_path_buf());
    }
    let candidates = [
        PathBuf::from("models").join(DEFAULT_MODEL),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../models")
            .join(DEFAULT_MODEL),
    ];
    candidates
        .into_iter()
        .find(|p| p.join("config.json").is_file())
        .and_then(|p| p.canonicalize().ok())
}

async fn wait_healthy(base: &str) -> Result<()> {
    for _ in 0..100 {
        if reqwest::get(format!("{base}/api/v1/health"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the server did not become healthy")
}

/// Registers the default model unless the team already has it; returns its id.
fn register_default(client: &ServerClient, dir: &Path) -> Result<uuid::Uuid> {
    if let Some(m) = client
        .models()?
        .into_iter()
        .find(|m| m.name == DEFAULT_MODEL)
    {
        return Ok(m.id);
    }
    let req = RegisterModel {
        name: DEFAULT_MODEL.into(),
        source: ModelSource::HfLocal {
            path: dir.to_string_lossy().into_owned(),
        },
        training_datasets: Vec::new(),
    };
    let model = client
        .register_model(&req)
        .with_context(|| format!("registering {}", dir.display()))?;
    Ok(model.id)
}

/// Serves the shipped model over the OpenAI API in this process, for the team's tokens.
async fn serve_openai(
    dir: &Path,
    id: uuid::Uuid,
    base: &str,
    bind: std::net::SocketAddr,
) -> Result<()> {
    let engine = crate::cmd::serve_model::start_engine(
        dir,
        Some(crucible_types::jobs::Device::Cpu),
        candle_core::DType::F32,
        crucible_gpu::engine::serving::ServingOptions::default(),
    )?;
    let auth = crucible_serve::Auth::Crucible(crucible_serve::CrucibleAuth::new(base, Some(id)));
    let state = std::sync::Arc::new(crucible_serve::ServeState::new(DEFAULT_MODEL, engine, auth));
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| {
        format!("binding {bind} for the OpenAI API (pass --openai-bind or --no-openai)")
    })?;
    println!(
        "The OpenAI API serves {DEFAULT_MODEL} at http://{}/v1 (the team's API token is the key):",
        listener.local_addr()?
    );
    println!(
        "  OPENAI_BASE_URL=http://{}/v1 OPENAI_API_KEY=$CRUCIBLE_TOKEN",
        listener.local_addr()?
    );
    tokio::spawn(async move {
        if let Err(e) = crucible_serve::serve(listener, state).await {
            tracing::error!(error = %e, "the OpenAI API stopped");
        }
    });
    Ok(())
}

/// Finds or starts Postgres, serves, registers the default model, starts a local worker.
pub fn run(args: Args) -> Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let token = crate::cmd::token::create(&args.serve.db, &args.team, "crucible up").await?;
        let code = crate::cmd::token::sign_in_code(&args.serve.db, &token).await?;
        let base = format!("http://{}", args.serve.bind);
        let server = tokio::spawn(async move { serve::serve(&args.serve).await });
        wait_healthy(&base).await?;
        println!("Crucible is up. Open the dashboard, signed in as team {:?}:", args.team);
        println!("  {base}/auth/link?code={code}");
        println!("  (a one-time link, valid for {} hours; {base}/signin takes the token below by hand)", crucible_server::store::sessions::LINK_HOURS);
        if crucible_server::dashboard::find_site_root().is_none() {
            println!("  (no hydration bundle: pages render without live updates; run scripts/build-site.sh)");
        }
        println!("Team {:?}: API token {token}", args.team);
        println!("  export CRUCIBLE_SERVER={base} CRUCIBLE_TOKEN={token}");
        println!("  MLflow clients: MLFLOW_TRACKING_URI={base} MLFLOW_TRACKING_TOKEN={token}");
        match default_model_dir(args.model_dir.as_deref()) {
            Some(dir) => {
                let client = ServerClient::new(&base, Some(&token));
                let registered = dir.clone();
                let id = tokio::task::spawn_blocking(move || register_default(&client, &registered))
                    .await
                    .context("registering the default model")??;
                println!("Model {DEFAULT_MODEL} ({}) is registered as {id}; evaluate it with", dir.display());
                println!("  the dashboard's Submit page ({base}/jobs/new), or");
                println!("  crucible submit eval --model {id} --benchmark synthetic --wait && crucible leaderboard");
                if !args.no_openai {
                    serve_openai(&dir, id, &base, args.openai_bind).await?;
                }
            }
            None => println!("(the shipped model folder models/{DEFAULT_MODEL} was not found; pass --model-dir)"),
        }
        if !args.no_worker {
            let config = WorkerConfig {
                server: base.clone(),
                token: token.clone(),
                name: "local".into(),
                data_dir: args.data_dir.clone(),
                poll: Duration::from_secs(1),
                max_jobs: None,
                work_dir: crate::cmd::db::crucible_home().join("work"),
                metrics_addr: None,
            };
            std::thread::spawn(move || {
                if let Err(e) = crucible_worker::run(&config) {
                    tracing::error!(error = %e, "local worker stopped");
                }
            });
            let offers = crucible_worker::capabilities().devices.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
            let runs_on = crucible_gpu::device::inference_device().map_or_else(|e| format!("none ({e})"), |d| d.describe());
            println!("A local worker is running (devices: {offers}; models run on {runs_on} unless a job asks for another).");
        }
        server.await.context("server task")?
    })
}
