//! The RL loop on the shipped small model: rollout log-probabilities against a recomputed training
//! forward pass, the seamless engine's kept groups under different row counts (so different
//! completion orders) against the lockstep engine's, and bit-identical resume from a checkpoint.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use crucible_gpu::tokenizer::Tokenizer;
use crucible_types::sampling::SamplingParams;
use crucible_types::{CodeReward, RlConfig, RlData, RlLevel};
use crucible_verify::math::MathConfig;
use crucible_verify::{Grader, Task, VerifierPool};
use crucible_worker::eval::prompt_ids;
use crucible_worker::rl::policy::{SequenceBatch, token_logprobs};
use crucible_worker::rl::problems::synthetic_problems;
use crucible_worker::rl::rollout::{
    Draw, RolloutGroup, RoundConfig, rollout_round, satisfied_prefix,
};
use crucible_worker::rl::seamless::rollout_seamless;
use crucible_worker::rl::{RlHooks, run};
use crucible_worker::train::params::Parameters;

fn small_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/crucible-mimo-small")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crucible-rl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const LEVEL1: RlLevel = RlLevel {
    steps: 1,
    digits: 1,
};

#[test]
fn rollout_logprobs_match_a_recomputed_forward_pass() {
    let device = candle_core::Device::Cpu;
    let params = Parameters::load(&small_model(), &device).unwrap();
    let tokenizer = Tokenizer::load(&small_model()).unwrap();
    let problems = synthetic_problems(3, &[LEVEL1], 3);
    let prompts: Vec<Vec<u32>> = problems
        .iter()
        .map(|p| prompt_ids(&tokenizer, &p.prompt).unwrap())
        .collect();
    let tasks: Vec<Arc<Task>> = problems.iter().map(|p| Arc::new(p.task.clone())).collect();
    let draws: Vec<Draw> = (0..problems.len())
        .map(|i| Draw {
            problem: i,
            prompt_ids: &prompts[i],
            task: &tasks[i],
        })
        .collect();
    let temperature = 0.8;
    let sampling = |g: usize, j: usize| SamplingParams {
        temperature,
        seed: (g * 10 + j) as u64,
        max_new_tokens: 48,
        ..SamplingParams::default()
    };
    let grader = Grader::new(MathConfig::default(), None, CodeReward::Strict);
    let mut pool = VerifierPool::new(2, 64, Arc::new(grader)).unwrap();
    let (groups, stats) = rollout_round(
        &params.inference_model().unwrap(),
        &tokenizer,
        &mut pool,
        &draws,
        &RoundConfig {
            group_size: 4,
            stop_after_informative: None,
            sampling: &sampling,
        },
    )
    .unwrap();
    assert_eq!((groups.len(), stats.aborted_groups), (3, 0));

    // The rollout's log-probs (KV-cache decoding) equal the training forward's (packed rows).
    let pairs: Vec<(&[u32], &[u32])> = groups
        .iter()
        .flat_map(|g| {
            g.samples
                .iter()
                .map(|s| (g.prompt_ids.as_slice(), s.token_ids.as_slice()))
        })
        .collect();
    let batch = SequenceBatch::new(&pairs).unwrap();
    let recomputed = token_logprobs(&params.model().unwrap(), &batch, temperature)
        .unwrap()
        .logp
        .to_vec2::<f32>()
        .unwrap();
    let rollout: Vec<&[f32]> = groups
        .iter()
        .flat_map(|g| g.samples.iter().map(|s| s.logprobs.as_slice()))
        .collect();
    let rollout = batch
        .spread(&rollout, &device)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let mut compared = 0;
    for r in 0..batch.rows {
        for c in 0..batch.len {
            if batch.mask[r * batch.len + c] == 1.0 {
                let (a, b) = (rollout[r][c], recomputed[r][c]);
                assert!(
                    (a - b).abs() < 1e-3,
                    "row {r} col {c}: rollout {a} vs forward {b}"
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, batch.response_tokens());
    assert!(compared > 12 * 5, "{compared} response tokens");
}

/// Problems of two levels, their prompts and tasks.
struct Fixture {
    prompts: Vec<Vec<u32>>,
    tasks: Vec<Arc<Task>>,
}

impl Fixture {
    fn new(tokenizer: &Tokenizer, count: usize) -> Self {
        let levels = [
            LEVEL1,
            RlLevel {
                steps: 2,
                digits: 1,
            },
        ];
        let problems = synthetic_problems(4, &levels, count);
        Fixture {
            prompts: problems
                .iter()
                .map(|p| prompt_ids(tokenizer, &p.prompt).unwrap())
                .collect(),
            tasks: problems.iter().map(|p| Arc::new(p.task.clone())).collect(),
        }
    }

    fn draws(&self) -> Vec<Draw<'_>> {
        (0..self.prompts.len())
            .map(|i| Draw {
                problem: i,
                prompt_ids: &self.prompts[i],
                task: &self.tasks[i],
            })
            .collect()
    }
}

fn tokens_and_rewards(groups: &[RolloutGroup]) -> Vec<(usize, Vec<Vec<u32>>, Vec<f32>)> {
    groups
        .iter()
        .map(|g| {
            let tokens = g.samples.iter().map(|s| s.token_ids.clone()).collect();
            (g.problem, tokens, g.rewards())
        })
        .collect()
}

#[test]
fn seamless_rollout_keeps_the_same_groups_whatever_the_rows() {
    let params = Parameters::load(&small_model(), &candle_core::Device::Cpu).unwrap();
    let model = params.inference_model().unwrap();
    let tokenizer = Tokenizer::load(&small_model()).unwrap();
    let fixture = Fixture::new(&tokenizer, 24);
    let draws = fixture.draws();
    // Long-tailed budgets with EOS ignored, seeded per (group, sample) like the run's seeds.
    let sampling = |g: usize, j: usize| SamplingParams {
        temperature: 1.0,
        seed: (g * 100 + j) as u64,
        max_new_tokens: [6, 10, 40, 8][(g + j) % 4],
        ignore_eos: j.is_multiple_of(2),
        ..SamplingParams::default()
    };
    let config = RoundConfig {
        group_size: 4,
        stop_after_informative: Some(3),
        sampling: &sampling,
    };
    let grader = Grader::new(MathConfig::default(), None, CodeReward::Strict);
    let mut pool = VerifierPool::new(2, 256, Arc::new(grader)).unwrap();
    // Every group decoded to the end in one lockstep batch, then cut at MiMo's FIFO prefix.
    let everything = RoundConfig {
        stop_after_informative: None,
        ..config
    };
    let (lockstep, _) = rollout_round(&model, &tokenizer, &mut pool, &draws, &everything).unwrap();
    let grades: Vec<_> = lockstep
        .iter()
        .flat_map(|g| g.samples.iter().map(|s| Some(s.grade.clone())))
        .collect();
    let kept = satisfied_prefix(&grades, 4, 3).expect("three informative groups");
    assert!(kept < draws.len(), "{kept} groups kept");
    let lockstep = &lockstep[..kept];
    for rows in [3, 9, 40] {
        let (groups, stats) =
            rollout_seamless(&model, &tokenizer, &mut pool, &draws, &config, rows, 0.5).unwrap();
        // The same FIFO prefix, sample for sample, as one lockstep batch of every group.
        assert_eq!(
            tokens_and_rewards(&groups),
            tokens_and_rewards(lockstep),
            "{rows} rows"
        );
        for (a, b) in groups.iter().zip(lockstep) {
            for (x, y) in a.samples.iter().zip(&b.samples) {
                let worst = x
                    .logprobs
                    .iter()
                    .zip(&y.logprobs)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0f32, f32::max);
                assert!(worst < 1e-4, "{rows} rows: |Δlogprob| {worst}");
            }
        }
        // Groups after the prefix never come back; what they decoded is counted as waste.
        assert!(stats.aborted_groups <= draws.len() - kept, "{rows} rows");
        let returned: usize = groups.iter().map(RolloutGroup::tokens).sum();
        assert_eq!(stats.decoded_tokens, returned + stats.wasted_tokens);
        assert!(stats.busy_row_s <= stats.capacity_row_s + 1e-9);
        if rows == 40 {
            // Forty rows start ten groups at once, each sampling a first token: those after the
            // prefix are wasted.
            let started_after = 10usize.saturating_sub(kept);
            assert!(stats.aborted_groups >= started_after, "{stats:?}");
            assert!(stats.wasted_samples >= 4 * started_after, "{stats:?}");
        }
    }
}

/// Collects metrics by step.
#[derive(Default)]
struct Recorder {
    metrics: Vec<(u64, String, f64)>,
    rollouts: Vec<(u64, Vec<RolloutGroup>)>,
    checkpoints: Vec<(u64, PathBuf)>,
}

impl RlHooks for Recorder {
    fn metrics(&mut self, step: u64, values: &[(&str, f64)]) {
        self.metrics
            .extend(values.iter().map(|(k, v)| (step, k.to_string(), *v)));
    }

    fn rollouts(
        &mut self,
        step: u64,
        _problems: &[crucible_worker::eval::Problem],
        groups: &[RolloutGroup],
    ) {
        self.rollouts.push((step, groups.to_vec()));
    }

    fn checkpoint(&mut self, step: u64, model_dir: &Path) {
        self.checkpoints.push((step, model_dir.to_path_buf()));
    }
}

impl Recorder {
    fn value(&self, step: u64, key: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(s, k, _)| *s == step && k == key)
            .map(|(_, _, v)| *v)
    }
}

fn tiny_config(steps: u64) -> RlConfig {
    RlConfig {
        data: vec![RlData::Synthetic {
            seed: 1,
            levels: vec![LEVEL1],
            problems: 12,
        }],
        steps,
        group_size: 4,
        groups_per_batch: 2,
        mini_batches: 2,
        max_new_tokens: 40,
        lr: 1e-3,
        checkpoint_every: 1,
        eval: None,
        seed: 5,
        ..RlConfig::default()
    }
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

#[test]
fn resumed_rl_run_continues_bit_identically() {
    let problems = || synthetic_problems(1, &[LEVEL1], 12);
    let straight = scratch("straight");
    let mut a = Recorder::default();
    let out = run(
        &tiny_config(2),
        &small_model(),
        problems(),
        &straight,
        None,
        &mut a,
    )
    .unwrap();
    assert_eq!(out.steps, 2);
    let keys = [
        "rollout/reward_mean",
        "rollout/pass_rate",
        "rollout/response_len_p95",
        "rollout/truncation_rate",
        "batch/kept_groups",
        "batch/dropped_groups",
        "train/entropy",
        "train/clip_fraction",
        "train/grad_norm",
        "time/generate_s",
        "time/reward_wait_s",
        "time/train_s",
        "time/idle_s",
        "rollout/slot_utilisation",
        "rollout/waste_fraction",
        "rollout/pass_rate/rl-s1d1",
    ];
    for key in keys {
        assert!(a.value(2, key).is_some(), "{key} missing");
    }
    assert!(a.value(1, "batch/kept_groups").unwrap() > 0.0);
    assert!(a.value(1, "train/entropy").unwrap() > 0.0);
    // A step whose rounds find no informative group trains on nothing and says so; never fails.
    for step in [1, 2] {
        let kept = a.value(step, "batch/kept_groups").unwrap();
        assert!(kept == 2.0 || a.value(step, "batch/cap_hit") == Some(1.0));
    }
    assert_eq!(
        a.checkpoints.iter().map(|c| c.0).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(a.rollouts.len(), 2);
    for (step, groups) in &a.rollouts {
        // The stored rollouts are the FIFO prefix: kept and dropped groups, never an aborted
        // one; the update trained on exactly the informative ones.
        let informative: Vec<&RolloutGroup> = groups
            .iter()
            .filter(|g| g.rewards().windows(2).any(|w| w[0] != w[1]))
            .collect();
        assert_eq!(
            a.value(*step, "batch/kept_groups"),
            Some(informative.len() as f64)
        );
        let tokens: usize = informative.iter().map(|g| g.tokens()).sum();
        assert_eq!(a.value(*step, "train/tokens"), Some(tokens as f64));
        assert_eq!(
            a.value(*step, "rollout/samples"),
            Some((groups.len() * 4) as f64)
        );
    }
    // The first mini-batch of a step is on-policy: its ratio is 1 up to float noise.
    assert!((a.value(1, "train/ratio_mean").unwrap() - 1.0).abs() < 0.05);

    let resumed = scratch("resumed");
    let mut b = Recorder::default();
    run(
        &tiny_config(1),
        &small_model(),
        problems(),
        &resumed,
        None,
        &mut b,
    )
    .unwrap();
    // A new process would start here: everything it needs is in the run folder.
    let mut c = Recorder::default();
    let out = run(
        &tiny_config(2),
        &small_model(),
        problems(),
        &resumed,
        None,
        &mut c,
    )
    .unwrap();
    assert_eq!(out.steps, 2);
    assert!(
        c.value(1, "rollout/reward_mean").is_none(),
        "step 1 is not redone"
    );
    // Timing decides only the costs: how busy the rows were, how much was wasted.
    let timed = |k: &str| {
        k.starts_with("time/") || k == "rollout/slot_utilisation" || k == "rollout/waste_fraction"
    };
    for key in keys.iter().filter(|k| !timed(k)) {
        assert_eq!(a.value(2, key), c.value(2, key), "{key}");
    }
    assert!(
        weights(&straight.join("checkpoints/step-2"))
            == weights(&resumed.join("checkpoints/step-2")),
        "the resumed run's weights differ"
    );
    // A different configuration refuses the checkpoint instead of mixing two runs.
    let other = RlConfig {
        lr: 5e-4,
        ..tiny_config(3)
    };
    let err = run(
        &other,
        &small_model(),
        problems(),
        &resumed,
        None,
        &mut Recorder::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("different configuration"), "{err}");
    let _ = std::fs::remove_dir_all(&straight);
    let _ = std::fs::remove_dir_all(&resumed);
}

#[test]
fn the_repository_rl_configs_parse_and_validate() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs/rl");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let config: RlConfig =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(e) = config.validate() {
            panic!("{}: {e:?}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 2, "{checked} configs in {}", dir.display());
}
