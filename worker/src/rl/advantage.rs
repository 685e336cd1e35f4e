//! Group-relative advantages: GRPO needs no value model because each response is judged against the
//! other responses sampled for the same prompt.

use candle_core::{Device, Tensor};

use super::RlError;

/// Whether advantages are divided by the group's reward std. Dividing (GRPO, MiMo) equalises the
/// gradient scale across prompts; not dividing (Dr. GRPO) avoids over-weighting near-uniform groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdvantageScaling {
    #[default]
    GroupStd,
    NoStd,
}

/// How rewards become advantages; `eps` keeps a zero-std group finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdvantageConfig {
    pub scaling: AdvantageScaling,
    pub eps: f32,
}

impl Default for AdvantageConfig {
    fn default() -> Self {
        Self {
            scaling: AdvantageScaling::GroupStd,
            eps: 1e-6,
        }
    }
}

/// One advantage per response: `(r − mean_g) / (std_g + eps)`, or `r − mean_g` without std.
/// `rewards` holds consecutive groups of `group_size` responses to the same prompt; std is the
/// population std (divide by G), matching the report's `std({r_1..r_G})`.
pub fn group_advantages(
    rewards: &[f32],
    group_size: usize,
    config: AdvantageConfig,
) -> Result<Vec<f32>, RlError> {
    if group_size == 0 {
        return Err(RlError::Config {
            name: "group_size".into(),
            reason: "must be at least 1".into(),
        });
    }
    if !rewards.len().is_multiple_of(group_size) {
        return Err(RlError::Input {
            name: "rewards",
            reason: format!(
                "{} rewards do not split into groups of {group_size}",
                rewards.len()
            ),
        });
    }
    if let Some(i) = rewards.iter().position(|r| !r.is_finite()) {
        return Err(RlError::Input {
            name: "rewards",
            reason: format!("reward {i} is {}", rewards[i]),
        });
    }
    let mut advantages = Vec::with_capacity(rewards.len());
    for group in rewards.chunks(group_size) {
        let n = group.len() as f32;
        let mean = group.iter().sum::<f32>() / n;
        let scale = match config.scaling {
            AdvantageScaling::GroupStd => {
                let var = group.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / n;
                1.0 / (var.sqrt() + config.eps)
            }
            AdvantageScaling::NoStd => 1.0,
        };
        advantages.extend(group.iter().map(|r| (r - mean) * scale));
    }
    Ok(advantages)
}

/// Spreads each response's advantage over all `seq_len` token positions (`[batch, seq_len]`), the
/// shape the objective consumes; padding is removed there by the token mask.
pub fn advantages_per_token(
    advantages: &[f32],
    seq_len: usize,
    device: &Device,
) -> Result<Tensor, RlError> {
    let column = Tensor::from_slice(advantages, (advantages.len(), 1), device)?;
    Ok(column
        .broadcast_as((advantages.len(), seq_len))?
        .contiguous()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deliberately naive two-pass reference, written independently of the chunked version.
    fn reference(rewards: &[f32], g: usize, std_scale: bool, eps: f32) -> Vec<f32> {
        let mut out = vec![0.0; rewards.len()];
        for start in (0..rewards.len()).step_by(g) {
            let mut sum = 0.0;
            for k in 0..g {
                sum += rewards[start + k];
            }
            let mean = sum / g as f32;
            let mut sq = 0.0;
            for k in 0..g {
                sq += (rewards[start + k] - mean) * (rewards[start + k] - mean);
            }
            let std = (sq / g as f32).sqrt();
            for k in 0..g {
                let centred = rewards[start + k] - mean;
                out[start + k] = if std_scale {
                    centred / (std + eps)
                } else {
                    centred
                };
            }
        }
        out
    }

    const REWARDS: [f32; 12] = [1.0, 0.0, 0.0, 1.0, 0.5, 0.25, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0];

    #[test]
    fn group_std_matches_reference_loop() {
        let got = group_advantages(&REWARDS, 4, AdvantageConfig::default()).unwrap();
        let want = reference(&REWARDS, 4, true, 1e-6);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
        // Group [1,0,0,1]: mean 0.5, std 0.5 -> ±1.
        assert!((got[0] - 1.0).abs() < 1e-4 && (got[1] + 1.0).abs() < 1e-4);
        // An all-equal group gets zero advantage, not NaN.
        assert!(got[8..].iter().all(|a| *a == 0.0));
    }

    #[test]
    fn no_std_matches_reference_loop() {
        let config = AdvantageConfig {
            scaling: AdvantageScaling::NoStd,
            ..Default::default()
        };
        let got = group_advantages(&REWARDS, 4, config).unwrap();
        assert_eq!(got, reference(&REWARDS, 4, false, 1e-6));
        assert_eq!(&got[..4], &[0.5, -0.5, -0.5, 0.5]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(group_advantages(&REWARDS, 5, AdvantageConfig::default()).is_err());
        assert!(group_advantages(&REWARDS, 0, AdvantageConfig::default()).is_err());
        assert!(group_advantages(&[1.0, f32::NAN], 2, AdvantageConfig::default()).is_err());
    }

    #[test]
    fn broadcast_repeats_each_advantage_along_the_sequence() {
        let t = advantages_per_token(&[1.5, -2.0], 3, &Device::Cpu).unwrap();
        assert_eq!(
            t.to_vec2::<f32>().unwrap(),
            vec![vec![1.5, 1.5, 1.5], vec![-2.0, -2.0, -2.0]]
        );
    }
}
