//! The GRPO policy loss with MiMo's changes: clip-higher, token-level normalisation and no KL term by
//! default. All per-token inputs are `[batch, seq_len]` tensors; padding is removed by a 0/1 mask.

use candle_core::{DType, Tensor};

use super::RlError;

/// How per-token losses are averaged. Token-level (MiMo, DAPO) gives every response token the same
/// weight, so long responses are not down-weighted; sequence-level (original GRPO) is kept to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LossNormalisation {
    #[default]
    Token,
    Sequence,
}

/// The objective's knobs. ε_high > ε_low lets low-probability tokens with positive advantage grow,
/// which fights entropy collapse; `kl_coef` adds a k3 penalty against a reference policy when set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyLossConfig {
    pub eps_low: f64,
    pub eps_high: f64,
    pub normalisation: LossNormalisation,
    pub kl_coef: Option<f64>,
}

impl Default for PolicyLossConfig {
    fn default() -> Self {
        Self {
            eps_low: 0.2,
            eps_high: 0.28,
            normalisation: LossNormalisation::Token,
            kl_coef: None,
        }
    }
}

/// One mini-batch of the objective's inputs. `logp_old` are the rollout's log-probabilities, so the
/// importance ratio stays correct across several mini-batch updates per rollout batch.
pub struct PolicyLossInputs<'a> {
    pub logp_new: &'a Tensor,
    pub logp_old: &'a Tensor,
    pub advantages: &'a Tensor,
    pub mask: &'a Tensor,
    pub logp_ref: Option<&'a Tensor>,
}

/// Diagnostics the run logs per step to see whether the trust region is binding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyLossStats {
    /// Fraction of response tokens whose gradient the clip removed.
    pub clip_fraction: f32,
    /// Mean importance ratio over response tokens.
    pub mean_ratio: f32,
    /// k3 estimate of KL(π_old ‖ π_new) over response tokens.
    pub approx_kl: f32,
    /// k3 estimate of KL(π_new ‖ π_ref), present only when the penalty is on.
    pub ref_kl: Option<f32>,
}

/// The scalar loss to call `backward` on, with its statistics.
pub struct PolicyLoss {
    pub loss: Tensor,
    pub stats: PolicyLossStats,
}

/// `−(1/N) Σ min(ρ·A, clip(ρ, 1−ε_low, 1+ε_high)·A)` (+ β·k3 to the reference when configured), with
/// ρ = exp(logp_new − logp_old) and N the normalisation chosen in `config`. Differentiable in
/// `logp_new`: clipped tokens contribute a constant and therefore no gradient.
pub fn policy_loss(
    inputs: &PolicyLossInputs,
    config: &PolicyLossConfig,
) -> Result<PolicyLoss, RlError> {
    validate_config(config)?;
    let shape = inputs.logp_new.dims().to_vec();
    if shape.len() != 2 {
        return Err(RlError::Input {
            name: "logp_new",
            reason: format!("expected [batch, seq_len], got {shape:?}"),
        });
    }
    for (name, t) in [
        ("logp_old", Some(inputs.logp_old)),
        ("advantages", Some(inputs.advantages)),
        ("mask", Some(inputs.mask)),
        ("logp_ref", inputs.logp_ref),
    ] {
        if let Some(t) = t.filter(|t| t.dims() != shape.as_slice()) {
            return Err(RlError::Shape {
                name,
                found: t.dims().to_vec(),
                expected: shape.clone(),
            });
        }
    }
    let logp_ref = match (config.kl_coef, inputs.logp_ref) {
        (Some(_), None) => {
            return Err(RlError::Input {
                name: "logp_ref",
                reason: "kl_coef is set but no reference log-probs were given".into(),
            });
        }
        (Some(coef), Some(r)) => Some((coef, r)),
        (None, _) => None,
    };

    let mask = inputs.mask.to_dtype(inputs.logp_new.dtype())?;
    let token_weights = token_weights(&mask, config.normalisation)?;
    let total_tokens = mask.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
    let masked_mean = |t: &Tensor| -> Result<f32, RlError> {
        let s = (t * &mask)?.sum_all()?.to_dtype(DType::F32)?;
        Ok(s.to_scalar::<f32>()? / total_tokens)
    };

    let log_ratio = (inputs.logp_new - inputs.logp_old)?;
    let ratio = log_ratio.exp()?;
    let clipped = ratio.clamp(1.0 - config.eps_low, 1.0 + config.eps_high)?;
    let unclipped_term = (&ratio * inputs.advantages)?;
    let clipped_term = (&clipped * inputs.advantages)?;
    let mut per_token = unclipped_term.minimum(&clipped_term)?.neg()?;
    let clip_active = clipped_term.lt(&unclipped_term)?.to_dtype(mask.dtype())?;

    let mut ref_kl = None;
    if let Some((coef, logp_ref)) = logp_ref {
        let kl = k3(&(logp_ref - inputs.logp_new)?)?;
        ref_kl = Some(masked_mean(&kl)?);
        per_token = (per_token + (kl * coef)?)?;
    }
    let loss = (per_token * token_weights)?.sum_all()?;

    let stats = PolicyLossStats {
        clip_fraction: masked_mean(&clip_active)?,
        mean_ratio: masked_mean(&ratio)?,
        approx_kl: masked_mean(&k3(&log_ratio.detach())?)?,
        ref_kl,
    };
    Ok(PolicyLoss { loss, stats })
}

fn validate_config(config: &PolicyLossConfig) -> Result<(), RlError> {
    for (name, value) in [
        ("eps_low", config.eps_low),
        ("eps_high", config.eps_high),
        ("kl_coef", config.kl_coef.unwrap_or(0.0)),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(RlError::Config {
                name: name.into(),
                reason: format!("must be a finite non-negative number, got {value}"),
            });
        }
    }
    if config.eps_low >= 1.0 {
        return Err(RlError::Config {
            name: "eps_low".into(),
            reason: format!(
                "must be below 1 so the lower clip bound stays positive, got {}",
                config.eps_low
            ),
        });
    }
    Ok(())
}

/// The mask scaled so that summing `per_token * weights` gives the chosen mean. Token-level divides
/// by all response tokens; sequence-level divides each row by its length and by the number of
/// non-empty rows, so fully padded rows neither count nor divide by zero.
fn token_weights(mask: &Tensor, normalisation: LossNormalisation) -> Result<Tensor, RlError> {
    let values = mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    if let Some((row, col)) = values.iter().enumerate().find_map(|(i, row)| {
        row.iter()
            .position(|v| *v != 0.0 && *v != 1.0)
            .map(|j| (i, j))
    }) {
        return Err(RlError::Input {
            name: "mask",
            reason: format!(
                "entry [{row}, {col}] is {}, expected 0 or 1",
                values[row][col]
            ),
        });
    }
    let lengths: Vec<f32> = values.iter().map(|row| row.iter().sum()).collect();
    let total: f32 = lengths.iter().sum();
    if total == 0.0 {
        return Err(RlError::Input {
            name: "mask",
            reason: "no response tokens in the batch".into(),
        });
    }
    let row_scale: Vec<f32> = match normalisation {
        LossNormalisation::Token => vec![1.0 / total; lengths.len()],
        LossNormalisation::Sequence => {
            let rows = lengths.iter().filter(|l| **l > 0.0).count() as f32;
            lengths
                .iter()
                .map(|l| if *l > 0.0 { 1.0 / (l * rows) } else { 0.0 })
                .collect()
        }
    };
    let row_scale = Tensor::from_slice(&row_scale, (lengths.len(), 1), mask.device())?
        .to_dtype(mask.dtype())?;
    Ok(mask.broadcast_mul(&row_scale)?)
}

/// Schulman's k3 estimator `exp(x) − x − 1` of KL from log(p/q) samples: unbiased and never negative.
fn k3(log_ratio: &Tensor) -> Result<Tensor, RlError> {
    Ok(((log_ratio.exp()? - log_ratio)? - 1.0)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Two responses: A=+1 over 3 tokens, A=−1 over 2 tokens plus one padding token whose extreme
    /// ratio must be ignored. Ratios are chosen to land on each side of each clip bound.
    struct Batch {
        logp_new: Var,
        logp_old: Tensor,
        advantages: Tensor,
        mask: Tensor,
    }

    fn batch() -> Batch {
        let dev = Device::Cpu;
        let ratios: [[f32; 3]; 2] = [[1.5, 1.25, 0.5], [0.5, 1.5, 10.0]];
        let old: [[f32; 3]; 2] = [[-1.0, -2.0, -0.5], [-3.0, -0.25, -1.5]];
        let new: Vec<f32> = (0..6)
            .map(|k| old[k / 3][k % 3] + ratios[k / 3][k % 3].ln())
            .collect();
        Batch {
            logp_new: Var::from_tensor(&Tensor::from_vec(new, (2, 3), &dev).unwrap()).unwrap(),
            logp_old: Tensor::new(&old, &dev).unwrap(),
            advantages: Tensor::new(&[[1f32, 1., 1.], [-1., -1., -1.]], &dev).unwrap(),
            mask: Tensor::new(&[[1f32, 1., 1.], [1., 1., 0.]], &dev).unwrap(),
        }
    }

    fn run(b: &Batch, config: &PolicyLossConfig, logp_ref: Option<&Tensor>) -> PolicyLoss {
        let inputs = PolicyLossInputs {
            logp_new: b.logp_new.as_tensor(),
            logp_old: &b.logp_old,
            advantages: &b.advantages,
            mask: &b.mask,
            logp_ref,
        };
        policy_loss(&inputs, config).unwrap()
    }

    fn close(got: f32, want: f32) {
        assert!((got - want).abs() < 1e-5, "got {got}, want {want}");
    }

    // Per-token losses by hand, −min(ρA, clip(ρ, 0.8, 1.28)A):
    //   A=+1: ρ=1.5 → clipped at 1+ε_high → −1.28; ρ=1.25 → inside (ε_low alone would clip) → −1.25;
    //         ρ=0.5 → the low clip does not apply to A>0 → −0.5
    //   A=−1: ρ=0.5 → clipped at 1−ε_low → +0.8; ρ=1.5 → the high clip does not apply to A<0 → +1.5
    #[test]
    fn token_level_loss_and_stats_match_hand_values() {
        let out = run(&batch(), &PolicyLossConfig::default(), None);
        // (−1.28 − 1.25 − 0.5 + 0.8 + 1.5) / 5
        close(out.loss.to_scalar::<f32>().unwrap(), -0.146);
        close(out.stats.clip_fraction, 2.0 / 5.0);
        close(out.stats.mean_ratio, (1.5 + 1.25 + 0.5 + 0.5 + 1.5) / 5.0);
        // k3 = ρ − ln ρ − 1: 0.094535 (×2), 0.026856, 0.193147 (×2)
        close(out.stats.approx_kl, 0.602222 / 5.0);
        assert_eq!(out.stats.ref_kl, None);
    }

    #[test]
    fn sequence_level_averages_each_response_first() {
        let config = PolicyLossConfig {
            normalisation: LossNormalisation::Sequence,
            ..Default::default()
        };
        let out = run(&batch(), &config, None);
        // ((−1.28 − 1.25 − 0.5) / 3 + (0.8 + 1.5) / 2) / 2 = (−1.01 + 1.15) / 2
        close(out.loss.to_scalar::<f32>().unwrap(), 0.07);
        // Equal lengths make the two normalisations agree.
        let b = batch();
        let full = Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap();
        let equal = Batch { mask: full, ..b };
        let token = run(&equal, &PolicyLossConfig::default(), None);
        let seq = run(&equal, &config, None);
        close(
            token.loss.to_scalar::<f32>().unwrap(),
            seq.loss.to_scalar::<f32>().unwrap(),
        );
    }

    #[test]
    fn symmetric_clip_would_clip_the_token_clip_higher_keeps() {
        let config = PolicyLossConfig {
            eps_high: 0.2,
            ..Default::default()
        };
        let out = run(&batch(), &config, None);
        // ρ=1.5 and ρ=1.25 now both clip at 1.2: (−1.2 − 1.2 − 0.5 + 0.8 + 1.5) / 5
        close(out.loss.to_scalar::<f32>().unwrap(), -0.12);
        close(out.stats.clip_fraction, 3.0 / 5.0);
    }

    #[test]
    fn gradient_flows_only_through_unclipped_response_tokens() {
        let b = batch();
        let out = run(&b, &PolicyLossConfig::default(), None);
        let grads = out.loss.backward().unwrap();
        let g = grads
            .get(b.logp_new.as_tensor())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // d/dlogp (−ρA/N) = −ρA/N with N=5; clipped and padded tokens get exactly zero.
        let want = [[0.0, -1.25 / 5.0, -0.5 / 5.0], [0.0, 1.5 / 5.0, 0.0]];
        for (row, want_row) in g.iter().zip(want) {
            for (got, want) in row.iter().zip(want_row) {
                close(*got, want);
            }
        }
    }

    #[test]
    fn kl_penalty_adds_k3_against_the_reference() {
        let b = batch();
        let logp_ref = (b.logp_new.as_tensor() - 2f64.ln()).unwrap().detach();
        let config = PolicyLossConfig {
            kl_coef: Some(0.1),
            ..Default::default()
        };
        let out = run(&b, &config, Some(&logp_ref));
        // k3(−ln 2) = 0.5 + ln 2 − 1 = 0.193147 on every token.
        close(out.stats.ref_kl.unwrap(), 0.193147);
        close(
            out.loss.to_scalar::<f32>().unwrap(),
            -0.146 + 0.1 * 0.193147,
        );
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let b = batch();
        let needs_ref = PolicyLossConfig {
            kl_coef: Some(0.1),
            ..Default::default()
        };
        let inputs = PolicyLossInputs {
            logp_new: b.logp_new.as_tensor(),
            logp_old: &b.logp_old,
            advantages: &b.advantages,
            mask: &b.mask,
            logp_ref: None,
        };
        assert!(matches!(
            policy_loss(&inputs, &needs_ref),
            Err(RlError::Input {
                name: "logp_ref",
                ..
            })
        ));
        let short = b.logp_old.narrow(1, 0, 2).unwrap();
        let inputs = PolicyLossInputs {
            logp_old: &short,
            ..inputs
        };
        assert!(matches!(
            policy_loss(&inputs, &PolicyLossConfig::default()),
            Err(RlError::Shape {
                name: "logp_old",
                ..
            })
        ));
        let half = (&b.mask * 0.5).unwrap();
        let inputs = PolicyLossInputs {
            logp_old: &b.logp_old,
            mask: &half,
            ..inputs
        };
        assert!(matches!(
            policy_loss(&inputs, &PolicyLossConfig::default()),
            Err(RlError::Input { name: "mask", .. })
        ));
        let inputs = PolicyLossInputs {
            mask: &b.mask,
            ..inputs
        };
        for (config, field) in [
            (
                PolicyLossConfig {
                    eps_low: 1.0,
                    ..Default::default()
                },
                "eps_low",
            ),
            (
                PolicyLossConfig {
                    eps_high: -0.1,
                    ..Default::default()
                },
                "eps_high",
            ),
            (
                PolicyLossConfig {
                    kl_coef: Some(f64::NAN),
                    ..Default::default()
                },
                "kl_coef",
            ),
        ] {
            match policy_loss(&inputs, &config) {
                Err(RlError::Config { name, .. }) => assert_eq!(name, field),
                other => panic!(
                    "{field}: expected a config error, got {:?}",
                    other.map(|l| l.stats)
                ),
            }
        }
    }
}
