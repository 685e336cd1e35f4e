//! `crucible bench rollout`: the same RL steps (model, seed, problems, group and batch size,
//! budgets) taken three ways — without dynamic sampling, with naive dynamic sampling (lockstep
//! rounds, the next round after the last), and with the seamless engine (one continuous batch
//! across rounds, FIFO early termination) — on two workloads: the shipped model's own answers to
//! mixed difficulty levels, and long-tailed lengths (EOS ignored, per-sample budgets drawn
//! long-tailed from the sample's seed, as `bench batching` does).

use std::path::PathBuf;

use anyhow::{Context, Result};
use crucible_types::{RlConfig, RlData, RlLevel, RlRollout};
use crucible_worker::eval::Problem;
use crucible_worker::rl::RlTrainer;
use crucible_worker::rl::problems::synthetic_problems;
use rand::{Rng, SeedableRng};

/// Arguments of `crucible bench rollout`.
#[derive(clap::Args)]
pub struct Args {
    /// The policy (HF folder).
    #[arg(long, default_value = "models/crucible-mimo-small")]
    model: PathBuf,
    /// RL steps per engine and workload.
    #[arg(long, default_value_t = 3)]
    steps: u64,
    /// Groups per batch.
    #[arg(long, default_value_t = 16)]
    groups: usize,
    /// Rollouts per group.
    #[arg(long, default_value_t = 8)]
    group_size: usize,
    /// Response budget of the mixed workload, and the longest of the long-tailed one.
    #[arg(long, default_value_t = 128)]
    max_new_tokens: u32,
    /// Rows the seamless engine decodes at once (default: one batch's rollouts).
    #[arg(long)]
    rows: Option<usize>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// One engine's figures on one workload, summed over its steps.
#[derive(Default)]
struct Totals {
    step_s: f64,
    rollout_s: f64,
    train_s: f64,
    /// Row-time not spent decoding, weighted by rollout time.
    idle_row_s: f64,
    decoded: f64,
    wasted: f64,
    kept: f64,
    dropped: f64,
    utilisation: f64,
    steps: f64,
}

impl Totals {
    fn add(&mut self, m: &[(String, f64)]) {
        let get = |key: &str| m.iter().find(|(k, _)| k == key).map_or(0.0, |(_, v)| *v);
        let rollout = get("time/rollout_s");
        self.step_s += get("time/step_s");
        self.rollout_s += rollout;
        self.train_s += get("time/train_s");
        self.idle_row_s += get("rollout/idle_fraction") * rollout;
        let decoded = get("rollout/decoded_tokens");
        self.decoded += decoded;
        self.wasted += get("rollout/waste_fraction") * decoded;
        self.kept += get("batch/kept_groups");
        self.utilisation += get("rollout/slot_utilisation");
        self.dropped += get("batch/dropped_groups");
        self.steps += 1.0;
    }

    fn idle(&self) -> f64 {
        self.idle_row_s / self.rollout_s.max(f64::MIN_POSITIVE)
    }

    fn waste(&self) -> f64 {
        self.wasted / self.decoded.max(1.0)
    }

    fn print(&self, name: &str) {
        let n = self.steps.max(1.0);
        println!(
            "  {name:<22} step {:>6.2} s (rollout {:>6.2} s, train {:>5.2} s)  idle {:>5.1}% (rows busy {:>5.1}% of decoding)  waste {:>5.1}%  kept {:.1} dropped {:.1} groups/step, {:.0} tokens/step",
            self.step_s / n,
            self.rollout_s / n,
            self.train_s / n,
            100.0 * self.idle(),
            100.0 * self.utilisation / n,
            100.0 * self.waste(),
            self.kept / n,
            self.dropped / n,
            self.decoded / n,
        );
    }
}

/// Runs the subcommand.
pub fn run(a: Args) -> Result<()> {
    let levels = [(1, 1), (2, 1), (1, 2), (2, 2)].map(|(steps, digits)| RlLevel { steps, digits });
    let count = 400;
    let problems = synthetic_problems(a.seed, &levels, count);
    let config = RlConfig {
        data: vec![RlData::Synthetic {
            seed: a.seed,
            levels: levels.to_vec(),
            problems: count,
        }],
        steps: a.steps,
        group_size: a.group_size,
        groups_per_batch: a.groups,
        max_new_tokens: a.max_new_tokens,
        lr: 2e-4,
        seed: a.seed,
        eval: None,
        store_rollouts: false,
        rollout_rows: a.rows,
        ..RlConfig::default()
    };
    let mut lines = Vec::new();
    for (workload, long_tail) in [("mixed", false), ("long_tail", true)] {
        println!(
            "{workload}: {} steps of {} groups × {}",
            a.steps, a.groups, a.group_size
        );
        let mut totals = Vec::new();
        for (name, rollout, dynamic_sampling) in [
            ("no dynamic sampling", RlRollout::Lockstep, false),
            ("naive dynamic sampling", RlRollout::Lockstep, true),
            ("seamless", RlRollout::Seamless, true),
        ] {
            let config = RlConfig {
                rollout,
                dynamic_sampling,
                ..config.clone()
            };
            let t = steps(&a, config, problems.clone(), long_tail)
                .with_context(|| format!("{workload}: {name}"))?;
            t.print(name);
            totals.push(t);
        }
        let (no_ds, naive, seamless) = (&totals[0], &totals[1], &totals[2]);
        let speedup = naive.step_s / seamless.step_s;
        let naive_vs_no_ds = naive.step_s / no_ds.step_s;
        let rollout_speedup = naive.rollout_s / seamless.rollout_s;
        println!(
            "  seamless {speedup:.2}x faster per step than naive (rollout phase {rollout_speedup:.2}x); naive {naive_vs_no_ds:.2}x slower than no dynamic sampling"
        );
        lines.push(serde_json::json!({
            "workload": workload,
            "speedup_vs_naive": speedup,
            "naive_vs_no_ds": naive_vs_no_ds,
            "rollout_speedup_vs_naive": rollout_speedup,
            "naive_rollout_vs_no_ds": naive.rollout_s / no_ds.rollout_s,
            "idle_fraction": seamless.idle(),
            "waste_fraction": seamless.waste(),
            "naive_idle_fraction": naive.idle(),
            "naive_waste_fraction": naive.waste(),
            "step_s": {"no_ds": no_ds.step_s / no_ds.steps, "naive": naive.step_s / naive.steps,
                       "seamless": seamless.step_s / seamless.steps},
        }));
    }
    println!("{}", serde_json::Value::Array(lines));
    Ok(())
}

/// Takes `a.steps` steps of `config` on `problems` from the shipped model in a fresh folder.
fn steps(a: &Args, config: RlConfig, problems: Vec<Problem>, long_tail: bool) -> Result<Totals> {
    let out = std::env::temp_dir().join(format!("crucible-bench-rollout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let device = candle_core::Device::Cpu;
    let mut trainer = RlTrainer::new(config, &a.model, problems, &out, &device)?;
    if long_tail {
        // Most responses short, a few long: 16 + (max − 16)·u⁴, u uniform from the sample's seed.
        let longest = f64::from(a.max_new_tokens.saturating_sub(16));
        trainer.shape_rollouts(Box::new(move |params| {
            let u: f64 = rand::rngs::StdRng::seed_from_u64(params.seed).random();
            params.ignore_eos = true;
            params.max_new_tokens = 16 + (longest * u.powi(4)) as u32;
        }));
    }
    let mut totals = Totals::default();
    for _ in 0..a.steps {
        totals.add(&trainer.step()?.metrics);
    }
    let _ = std::fs::remove_dir_all(&out);
    Ok(totals)
}
