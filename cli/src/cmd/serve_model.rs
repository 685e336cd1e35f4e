//! `crucible serve-model`: a model behind the OpenAI API (completions, chat, tokenize,
//! metrics), for the openai client, lm-evaluation-harness, chat UIs and Crucible's own
//! `openai` endpoint models.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use candle_core::DType;
use crucible_gpu::device::InferenceDevice;
use crucible_gpu::engine::serving::{ServingEngine, ServingOptions};
use crucible_gpu::model::{LoadOptions, MimoModel};
use crucible_gpu::tokenizer::Tokenizer;
use crucible_serve::{Auth, CrucibleAuth, ServeState};
use crucible_types::sampling::Speculative;
use crucible_worker::client::ServerClient;
use uuid::Uuid;

/// Arguments of `crucible serve-model`.
#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint folder, Hugging Face id (`owner/name[@revision]`), or the id of a model
    /// registered on the Crucible server (`--server`, with a token of its team).
    #[arg(long)]
    pub model: String,
    /// The name clients pass as `model` (default: the registered name, else the folder's name).
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// Where the model runs: cpu or cuda (default: CUDA when built with it and present, else
    /// the CPU). The serving batch is not yet implemented on the wgpu backend.
    #[arg(long)]
    pub device: Option<crucible_types::jobs::Device>,
    /// Compute dtype: f32 (CPU default), f16, or bf16 (GPU only).
    #[arg(long, default_value = "f32", value_parser = crate::cmd::generate::parse_dtype)]
    pub dtype: DType,
    /// Most sequences decoding at once (vLLM's `--max-num-seqs`); the others wait in order.
    #[arg(long, default_value_t = 32)]
    pub max_num_seqs: usize,
    /// Speculative decoding: `off`, or `mtp[:K]` to draft with the checkpoint's MTP layers
    /// (greedy output unchanged; seeded sampled requests then reproduce only within the same
    /// batch, so `off` is the default).
    #[arg(long, default_value = "off")]
    pub speculative: Speculative,
    /// Accept exactly this bearer token (vLLM's `--api-key`) instead of Crucible tokens.
    #[arg(
        long,
        env = "CRUCIBLE_SERVE_API_KEY",
        conflicts_with = "crucible_server"
    )]
    pub api_key: Option<String>,
    /// Accept the Crucible tokens of this server; with a registered `--model`, only those of
    /// the team that owns it. Without this or `--api-key`, anyone who reaches the port may call.
    #[arg(long = "server", env = "CRUCIBLE_SERVER")]
    pub crucible_server: Option<String>,
    /// Token used to look up a registered `--model` (`crucible token create`).
    #[arg(long, env = "CRUCIBLE_TOKEN")]
    pub token: Option<String>,
}

/// The weights' folder, the default served name, and the registered id when there is one.
fn resolve(args: &Args) -> Result<(PathBuf, String, Option<Uuid>)> {
    let Ok(id) = Uuid::parse_str(&args.model) else {
        let folder = crate::cmd::model_folder(&args.model)?;
        let name = if folder == std::path::Path::new(&args.model) {
            folder
                .file_name()
                .map_or_else(|| args.model.clone(), |n| n.to_string_lossy().into_owned())
        } else {
            args.model.clone() // a hub id names itself
        };
        return Ok((folder, name, None));
    };
    let server = args
        .crucible_server
        .as_deref()
        .context("--model is a registered model's id: pass --server (or set CRUCIBLE_SERVER)")?;
    let client = ServerClient::new(server, args.token.as_deref());
    let model = client
        .model(id)
        .with_context(|| format!("looking up model {id} on {server}"))?;
    let folder = crucible_worker::hub::local_weights(&model.source)?
        .with_context(|| format!("model {id} is an OpenAI endpoint, not weights to serve"))?;
    Ok((folder, model.name, Some(id)))
}

/// Loads the model and starts its engine thread.
pub fn start_engine(
    folder: &std::path::Path,
    device: Option<crucible_types::jobs::Device>,
    dtype: DType,
    options: ServingOptions,
) -> Result<ServingEngine> {
    let device = crucible_gpu::device::for_requirement(device).context("selecting a device")?;
    let device = match device {
        InferenceDevice::Candle(d) => d,
        InferenceDevice::Wgpu(_) => bail!(
            "the serving engine runs on candle (cpu or cuda): its continuous batch joins candle \
             KV caches, which the wgpu backend does not have yet; pass --device cpu"
        ),
    };
    let opts = LoadOptions {
        dtype,
        device,
        load_mtp: options.speculative != Speculative::Off,
        ..LoadOptions::default()
    };
    let model = MimoModel::load(folder, &opts)
        .with_context(|| format!("loading the model in {}", folder.display()))?;
    let tokenizer = Tokenizer::load(folder).context("loading the tokenizer")?;
    ServingEngine::start(model, Arc::new(tokenizer), options).context("starting the engine")
}

/// Runs the subcommand until interrupted.
pub fn run(args: Args) -> Result<()> {
    let (folder, default_name, registered) = resolve(&args)?;
    let options = ServingOptions {
        max_rows: args.max_num_seqs,
        speculative: args.speculative,
    };
    let engine = start_engine(&folder, args.device, args.dtype, options)?;
    let auth = match (&args.api_key, &args.crucible_server) {
        (Some(key), _) => Auth::ApiKey(key.clone()),
        (None, Some(server)) => Auth::Crucible(CrucibleAuth::new(server, registered)),
        (None, None) => {
            tracing::warn!(
                "no --api-key and no --server: anyone who reaches {} may call the model",
                args.bind
            );
            Auth::Open
        }
    };
    let name = args.served_model_name.clone().unwrap_or(default_name);
    let state = Arc::new(ServeState::new(name.clone(), engine, auth));
    tokio::runtime::Runtime::new()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("binding {}", args.bind))?;
        println!(
            "serving {name} ({}) on http://{}/v1",
            folder.display(),
            listener.local_addr()?
        );
        crucible_serve::serve(listener, state).await?;
        Ok(())
    })
}
