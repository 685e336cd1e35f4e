//! `crucible bench serve`: time to first token, inter-token latency and output tokens/s of the
//! OpenAI-compatible server at concurrency 1, 8 and 32 (mean, median and p99, as
//! `vllm bench serve` reports them), against `transformers serve` on the same weights in the same
//! run when the given Python has it. Both servers get the same streamed chat requests from the
//! same client code: greedy, the synthetic benchmark's problems, `max_tokens` each.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use crucible_serve::{Auth, ServeState};
use futures::StreamExt;
use serde_json::{Value, json};

/// Clients sending requests at once, in order.
const CONCURRENCY: [usize; 3] = [1, 8, 32];
/// Fewest requests a level sends, so that the percentiles of concurrency 1 mean something.
const MIN_REQUESTS: usize = 16;

/// Arguments of `crucible bench serve`.
#[derive(clap::Args)]
pub struct Args {
    /// The model folder served (its weights go to the peer too, read as Qwen2).
    #[arg(long, default_value = "models/crucible-mimo-small")]
    model: PathBuf,
    /// Python with `transformers[serving]` and torch for the peer (skipped with a note if unusable).
    #[arg(
        long,
        env = "CRUCIBLE_BENCH_PYTHON",
        default_value = ".venv/bin/python"
    )]
    python: PathBuf,
    /// Completion tokens asked of each request.
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    /// Requests each client sends, one after another (at least 16 per level in all).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Where the peer's copy of the model is written.
    #[arg(long, default_value_os_t = std::env::temp_dir().join("crucible-bench-serve"))]
    workdir: PathBuf,
}

/// Mean, median and 99th percentile, in milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Summary {
    mean_ms: f64,
    median_ms: f64,
    p99_ms: f64,
}

fn summarise(mut seconds: Vec<f64>) -> Summary {
    if seconds.is_empty() {
        return Summary {
            mean_ms: f64::NAN,
            median_ms: f64::NAN,
            p99_ms: f64::NAN,
        };
    }
    seconds.sort_by(f64::total_cmp);
    let at = |q: f64| seconds[((seconds.len() - 1) as f64 * q).round() as usize] * 1e3;
    Summary {
        mean_ms: seconds.iter().sum::<f64>() / seconds.len() as f64 * 1e3,
        median_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

/// One concurrency level's figures.
#[derive(Debug, Clone, serde::Serialize)]
struct Level {
    concurrency: usize,
    requests: usize,
    output_tok_s: f64,
    ttft: Summary,
    itl: Summary,
}

/// What one streamed request saw: time to its first token, the gaps between tokens, tokens.
struct Timing {
    ttft: f64,
    gaps: Vec<f64>,
    tokens: usize,
}

/// Sends one streamed chat request and times its content chunks (one per token on both servers).
async fn timed_request(
    http: &reqwest::Client,
    base: &str,
    model: &str,
    prompt: &str,
    max_tokens: u32,
) -> Result<Timing> {
    let body = json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": true,
    });
    let start = Instant::now();
    let response = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!(
            "{base}: HTTP {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    let mut stream = response.bytes_stream();
    let (mut buffer, mut stamps) = (String::new(), Vec::new());
    while let Some(bytes) = stream.next().await {
        buffer.push_str(&String::from_utf8_lossy(&bytes?));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(data) = event.trim().strip_prefix("data:").map(str::trim) else {
                continue;
            };
            if data == "[DONE]" {
                continue;
            }
            let chunk: Value =
                serde_json::from_str(data).with_context(|| format!("chunk {data}"))?;
            let content = chunk
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str);
            if content.is_some_and(|c| !c.is_empty()) {
                stamps.push(start.elapsed().as_secs_f64());
            }
        }
    }
    let Some(&first) = stamps.first() else {
        bail!("{base}: a reply without tokens")
    };
    Ok(Timing {
        ttft: first,
        gaps: stamps.windows(2).map(|w| w[1] - w[0]).collect(),
        tokens: stamps.len(),
    })
}

/// Runs `concurrency` clients of `rounds` requests each against `base`.
async fn level(
    base: &str,
    model: &str,
    prompts: &[String],
    concurrency: usize,
    args: &Args,
) -> Result<Level> {
    let http = reqwest::Client::new();
    let rounds = args.rounds.max(MIN_REQUESTS.div_ceil(concurrency));
    let start = Instant::now();
    let clients = (0..concurrency).map(|client| {
        let http = http.clone();
        async move {
            let mut timings = Vec::new();
            for round in 0..rounds {
                let prompt = &prompts[(client * rounds + round) % prompts.len()];
                timings.push(timed_request(&http, base, model, prompt, args.max_tokens).await?);
            }
            Ok::<_, anyhow::Error>(timings)
        }
    });
    let timings: Vec<Timing> = futures::future::try_join_all(clients)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let wall = start.elapsed().as_secs_f64();
    let tokens: usize = timings.iter().map(|t| t.tokens).sum();
    Ok(Level {
        concurrency,
        requests: timings.len(),
        output_tok_s: tokens as f64 / wall,
        ttft: summarise(timings.iter().map(|t| t.ttft).collect()),
        itl: summarise(timings.iter().flat_map(|t| t.gaps.clone()).collect()),
    })
}

/// Every level against one server, after one warm-up request.
async fn all_levels(
    base: &str,
    model: &str,
    prompts: &[String],
    args: &Args,
) -> Result<Vec<Level>> {
    timed_request(&reqwest::Client::new(), base, model, &prompts[0], 4).await?;
    let mut out = Vec::new();
    for c in CONCURRENCY {
        out.push(level(base, model, prompts, c, args).await?);
    }
    Ok(out)
}

/// A copy of `model` that transformers reads as Qwen2 (the MiMo checkpoint's main model is
/// Qwen2; its MTP weights are left unused), sharing the weight and tokenizer files.
fn qwen2_copy(model: &Path, workdir: &Path) -> Result<PathBuf> {
    let dir = workdir.join("qwen2");
    std::fs::create_dir_all(&dir)?;
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json"))?)?;
    config["architectures"] = json!(["Qwen2ForCausalLM"]);
    config["model_type"] = json!("qwen2");
    std::fs::write(dir.join("config.json"), config.to_string())?;
    for file in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        let link = dir.join(file);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(std::fs::canonicalize(model.join(file))?, &link)?;
    }
    Ok(dir)
}

/// `transformers serve` on a free port, killed when dropped.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the peer and waits until it answers, or says why it cannot.
async fn start_peer(python: &Path, model: &Path) -> Result<(Peer, String)> {
    let check = Command::new(python)
        .args(["-c", "import torch, transformers, fastapi, uvicorn"])
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !check.status.success() {
        bail!(
            "{} cannot import torch/transformers[serving]",
            python.display()
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(python)
        .args([
            "-m",
            "transformers.cli.transformers",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .arg(model) // preloaded, and used for every request
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env("HF_HUB_OFFLINE", "1")
        .spawn()
        .context("starting transformers serve")?;
    let peer = Peer(child);
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..600 {
        if reqwest::get(format!("{base}/health"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok((peer, base));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("transformers serve did not come up in 2 minutes")
}

fn print_table(name: &str, levels: &[Level]) {
    println!("{name}:");
    println!("  conc  req   tok/s   TTFT mean/median/p99 ms      ITL mean/median/p99 ms");
    for l in levels {
        println!(
            "  {:>4} {:>4} {:>7.1}   {:>7.1} {:>7.1} {:>7.1}   {:>7.2} {:>7.2} {:>7.2}",
            l.concurrency,
            l.requests,
            l.output_tok_s,
            l.ttft.mean_ms,
            l.ttft.median_ms,
            l.ttft.p99_ms,
            l.itl.mean_ms,
            l.itl.median_ms,
            l.itl.p99_ms
        );
    }
}

/// Runs the benchmark; the last line is JSON.
pub fn run(args: Args) -> Result<()> {
    let prompts: Vec<String> = crucible_worker::eval::load_benchmark("synthetic", None, Some(256))?
        .problems
        .into_iter()
        .map(|p| p.prompt)
        .collect();
    let engine = crate::cmd::serve_model::start_engine(
        &args.model,
        Some(crucible_types::jobs::Device::Cpu),
        candle_core::DType::F32,
        crucible_gpu::engine::serving::ServingOptions::default(),
    )?;
    let name = "bench";
    let state = Arc::new(ServeState::new(name, engine, Auth::Open));
    tokio::runtime::Runtime::new()?.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(crucible_serve::serve(listener, state));
        let ours = all_levels(&base, name, &prompts, &args).await?;
        print_table("crucible serve-model", &ours);
        let peer = match qwen2_copy(&args.model, &args.workdir) {
            Ok(copy) => match start_peer(&args.python, &copy).await {
                Ok((process, peer_base)) => {
                    let model = copy.to_string_lossy().into_owned();
                    let levels = all_levels(&peer_base, &model, &prompts, &args).await;
                    drop(process);
                    levels.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        let mut line =
            json!({ "model": args.model, "max_tokens": args.max_tokens, "crucible": ours });
        match peer {
            Ok(levels) => {
                print_table("transformers serve", &levels);
                for (a, b) in ours.iter().zip(&levels) {
                    line[format!("tok_s_ratio_c{}", a.concurrency)] =
                        json!(a.output_tok_s / b.output_tok_s);
                    line[format!("ttft_median_ratio_c{}", a.concurrency)] =
                        json!(b.ttft.median_ms / a.ttft.median_ms);
                }
                line["transformers"] = json!(levels);
            }
            Err(why) => {
                println!("(no peer: {why})");
                line["transformers"] = Value::Null;
            }
        }
        println!("{line}");
        Ok(())
    })
}
