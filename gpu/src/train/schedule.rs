//! Learning-rate schedules: linear warmup, then cosine decay or warmup-stable-decay (WSD), or a
//! constant rate (the report's SFT used a constant 3e-5).

use serde::{Deserialize, Serialize};

/// The learning rate as a function of the optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// Warmup, then a half cosine from the peak down to `min_lr_ratio` × peak at the last step.
    Cosine { warmup: u64, min_lr_ratio: f64 },
    /// Warmup, a flat stretch at the peak, then a linear decay to `min_lr_ratio` × peak over the
    /// last `decay_fraction` of the run.
    Wsd {
        warmup: u64,
        decay_fraction: f64,
        min_lr_ratio: f64,
    },
    /// Warmup, then the peak until the end.
    Constant { warmup: u64 },
}

impl Schedule {
    /// Learning rate of update `step` (0-based) of a `total`-update run with peak rate `peak`.
    pub fn lr(&self, peak: f64, step: u64, total: u64) -> f64 {
        let warmup = match *self {
            Schedule::Cosine { warmup, .. }
            | Schedule::Wsd { warmup, .. }
            | Schedule::Constant { warmup } => warmup,
        };
        if step < warmup {
            return peak * (step + 1) as f64 / warmup as f64;
        }
        let last = total.saturating_sub(1).max(warmup);
        match *self {
            Schedule::Constant { .. } => peak,
            Schedule::Cosine { min_lr_ratio, .. } => {
                let span = (last - warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                let min = peak * min_lr_ratio;
                min + (peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Schedule::Wsd {
                decay_fraction,
                min_lr_ratio,
                ..
            } => {
                let decay_steps = ((total as f64) * decay_fraction).round() as u64;
                let decay_start = last.saturating_sub(decay_steps).max(warmup);
                if step <= decay_start {
                    return peak;
                }
                let progress =
                    ((step - decay_start) as f64 / (last - decay_start).max(1) as f64).min(1.0);
                peak * (1.0 - progress * (1.0 - min_lr_ratio))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn warmup_is_linear_and_cosine_ends_at_the_floor() {
        let s = Schedule::Cosine {
            warmup: 4,
            min_lr_ratio: 0.1,
        };
        assert!(close(s.lr(1.0, 0, 20), 0.25));
        assert!(close(s.lr(1.0, 3, 20), 1.0));
        assert!(close(s.lr(1.0, 4, 20), 1.0));
        assert!(close(s.lr(1.0, 19, 20), 0.1));
        // Halfway through the decay the cosine is at the midpoint.
        let mid = s.lr(1.0, 4 + 15 / 2, 20);
        assert!(mid < 0.6 && mid > 0.5, "{mid}");
        let mut prev = f64::INFINITY;
        for step in 4..20 {
            let lr = s.lr(1.0, step, 20);
            assert!(lr <= prev);
            prev = lr;
        }
    }

    #[test]
    fn wsd_is_flat_then_decays_linearly() {
        let s = Schedule::Wsd {
            warmup: 2,
            decay_fraction: 0.4,
            min_lr_ratio: 0.0,
        };
        // 11 steps: warmup 0–1, flat through step 6, linear decay over steps 7–10.
        assert!(close(s.lr(2.0, 0, 11), 1.0));
        assert!(close(s.lr(2.0, 6, 11), 2.0));
        assert!(close(s.lr(2.0, 8, 11), 1.0));
        assert!(close(s.lr(2.0, 10, 11), 0.0));
        let c = Schedule::Constant { warmup: 0 };
        assert!(close(c.lr(3e-5, 0, 10), 3e-5) && close(c.lr(3e-5, 9, 10), 3e-5));
    }
}
