//! `crucible generate`: load an HF-format checkpoint folder and stream a continuation.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use candle_core::DType;
use crucible_gpu::engine::{GenerationObserver, GenerationRequest, generate_speculative};
use crucible_gpu::model::{LoadOptions, MimoModel};
use crucible_gpu::tokenizer::{ChatMessage, Tokenizer};
use crucible_types::sampling::{SamplingParams, Speculative};

/// Arguments of `crucible generate`.
#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint folder (config.json, *.safetensors, tokenizer.json [, tokenizer_config.json]),
    /// or a Hugging Face id `owner/name[@revision]`, fetched into the HF cache once.
    #[arg(long)]
    model: String,
    /// The prompt (a user message with --chat).
    #[arg(long)]
    prompt: String,
    /// Wrap the prompt in the checkpoint's chat template (with the assistant header appended).
    #[arg(long)]
    chat: bool,
    /// System message for --chat.
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// Where the model runs: cpu, cuda or wgpu (default: CRUCIBLE_DEVICE, else CUDA when
    /// built with it and present, else a hardware wgpu adapter, else the CPU).
    #[arg(long)]
    device: Option<crucible_types::jobs::Device>,
    /// Compute dtype: f32 (CPU default), f16, or bf16 (GPU only).
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    dtype: DType,
    /// 0 means greedy.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// 0 disables top-k.
    #[arg(long, default_value_t = 0)]
    top_k: u32,
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 256)]
    max_new_tokens: u32,
    /// A string that ends generation (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Keep going past end-of-sequence tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// Speculative decoding: `off`, or `mtp[:K]` to draft K tokens per step with the
    /// checkpoint's MTP layers (same greedy output, same sampling distribution, faster).
    #[arg(long, default_value = "off")]
    speculative: Speculative,
}

/// Streams generated text to stdout as it becomes final.
struct Stdout<'a>(std::io::StdoutLock<'a>);

impl GenerationObserver for Stdout<'_> {
    fn on_text(&mut self, _row: usize, text: &str) {
        // A closed pipe (e.g. `| head`) is not an error worth aborting generation for.
        let _ = self
            .0
            .write_all(text.as_bytes())
            .and_then(|_| self.0.flush());
    }
}

pub(crate) fn parse_dtype(s: &str) -> Result<DType, String> {
    match s {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::BF16),
        other => Err(format!("unknown dtype {other:?} (f32, f16, bf16)")),
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let params = SamplingParams {
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        min_p: args.min_p,
        seed: args.seed,
        max_new_tokens: args.max_new_tokens,
        stop_token_ids: Vec::new(),
        stop: args.stop,
        ignore_eos: args.ignore_eos,
    };
    params.validate()?;
    let spinner =
        indicatif::ProgressBar::new_spinner().with_message(format!("loading {}", args.model));
    spinner.enable_steady_tick(Duration::from_millis(100));
    let folder = crate::cmd::model_folder(&args.model)?;
    let device =
        crucible_gpu::device::for_requirement(args.device).context("selecting a device")?;
    let opts = LoadOptions {
        dtype: args.dtype,
        load_mtp: args.speculative != Speculative::Off,
        ..device.load_options()
    };
    if opts.wgpu.is_some() && args.dtype != DType::F32 {
        anyhow::bail!("--dtype {:?}: the wgpu backend computes in f32", args.dtype);
    }
    let model = MimoModel::load(&folder, &opts).context("loading the model")?;
    let tokenizer = Tokenizer::load(&folder).context("loading the tokenizer")?;
    spinner.finish_and_clear();

    let text = if args.chat {
        let mut messages = Vec::new();
        if let Some(system) = args.system {
            messages.push(ChatMessage {
                role: "system".into(),
                content: system,
            });
        }
        messages.push(ChatMessage::user(args.prompt));
        tokenizer.apply_chat_template(&messages, true)?
    } else {
        args.prompt
    };
    let prompt_ids = tokenizer.encode(&text, !args.chat)?;
    tracing::info!(prompt_tokens = prompt_ids.len(), device = ?opts.device, "generating");

    let start = Instant::now();
    let out = generate_speculative(
        &model,
        &tokenizer,
        &[GenerationRequest { prompt_ids, params }],
        args.speculative,
        &mut Stdout(std::io::stdout().lock()),
    )?;
    let seconds = start.elapsed().as_secs_f64();
    let n = out.sequences[0].token_ids.len();
    eprintln!(
        "\n[{n} tokens in {seconds:.2}s: {:.2} tokens/s, finish: {:?}]",
        n as f64 / seconds,
        out.sequences[0].finish_reason
    );
    if args.speculative != Speculative::Off {
        eprintln!("[{}]", out.metrics.summary());
    }
    Ok(())
}
