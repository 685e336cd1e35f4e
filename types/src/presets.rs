//! The evaluation protocols a job can name: `mimo` (the report's: T = 0.6, top-p 0.95, avg@32 on
//! AIME, avg@8 on code and GPQA, 1 sample elsewhere) and `greedy` (T = 0, one sample). The server
//! resolves them at submission, so every eval record stores the concrete n and sampling it ran.

use crate::jobs::EvalSpec;
use crate::sampling::SamplingParams;
use crate::tracking::wire_enum;
use crate::validate::Invalid;
use serde::{Deserialize, Serialize};

wire_enum! {
    /// A named evaluation protocol.
    Preset {
        /// MiMo's report: T = 0.6, top-p 0.95, avg@32 AIME, avg@8 code and GPQA.
        Mimo => "mimo",
        /// T = 0, one sample per problem.
        Greedy => "greedy",
    }
}

/// Benchmarks whose MiMo protocol is avg@32.
const AVG32: &[&str] = &["aime2024", "aime2025"];
/// Benchmarks whose MiMo protocol is avg@8.
const AVG8: &[&str] = &["humaneval", "mbpp", "livecodebench", "gpqa_diamond"];
/// Token budget of a preset when the spec gives none.
const PRESET_MAX_NEW_TOKENS: u32 = 1024;
/// Most samples per problem an eval may ask for.
pub const MAX_SAMPLES: u32 = 1024;

impl Preset {
    /// Samples per problem and sampling of `benchmark` under this protocol.
    pub fn for_benchmark(self, benchmark: &str) -> (u32, SamplingParams) {
        match self {
            Preset::Mimo => {
                let n = if AVG32.contains(&benchmark) {
                    32
                } else if AVG8.contains(&benchmark) {
                    8
                } else {
                    1
                };
                let sampling = SamplingParams {
                    temperature: 0.6,
                    top_p: 0.95,
                    max_new_tokens: PRESET_MAX_NEW_TOKENS,
                    ..SamplingParams::default()
                };
                (n, sampling)
            }
            Preset::Greedy => (1, SamplingParams::greedy(PRESET_MAX_NEW_TOKENS)),
        }
    }
}

impl EvalSpec {
    /// The concrete (n, sampling) for one benchmark: explicit fields win, then the preset, then
    /// greedy. Errors name the spec's field.
    pub fn resolve(&self, benchmark: &str) -> Result<(u32, SamplingParams), Invalid> {
        let (preset_n, preset_sampling) = self
            .preset
            .unwrap_or(Preset::Greedy)
            .for_benchmark(benchmark);
        let sampling = self.sampling.clone().unwrap_or(preset_sampling);
        sampling.validate().map_err(|e| e.under("sampling"))?;
        let n = self.n_samples.unwrap_or(preset_n);
        crate::validate::in_range("n_samples", n, 1..=MAX_SAMPLES)?;
        if let Some(i) = self.ks.iter().position(|k| *k == 0 || *k > n) {
            return Err(Invalid::new(
                format!("ks[{i}]"),
                format!("every k must be between 1 and n_samples ({n})"),
            ));
        }
        Ok((n, sampling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn spec(preset: Option<Preset>) -> EvalSpec {
        EvalSpec {
            model_id: Uuid::nil(),
            benchmarks: vec![],
            sampling: None,
            n_samples: None,
            limit: None,
            preset,
            ks: vec![],
            project_id: None,
        }
    }

    #[test]
    fn mimo_preset_follows_the_report() {
        let s = spec(Some(Preset::Mimo));
        let (n, p) = s.resolve("aime2024").unwrap();
        assert_eq!((n, p.temperature, p.top_p), (32, 0.6, 0.95));
        assert_eq!(s.resolve("humaneval").unwrap().0, 8);
        assert_eq!(s.resolve("gpqa_diamond").unwrap().0, 8);
        assert_eq!(s.resolve("math500").unwrap().0, 1);
    }

    #[test]
    fn explicit_fields_win_and_bad_ones_are_named() {
        let mut s = spec(Some(Preset::Mimo));
        s.n_samples = Some(4);
        s.ks = vec![1, 4];
        assert_eq!(s.resolve("aime2024").unwrap().0, 4);
        s.ks = vec![8];
        assert_eq!(s.resolve("aime2024").unwrap_err().field, "ks[0]");
        assert_eq!(spec(None).resolve("gsm8k").unwrap().1.temperature, 0.0);
        let unknown = serde_json::from_str::<Preset>("\"fast\"").unwrap_err();
        assert!(unknown.to_string().contains("fast"), "{unknown}");
        s.n_samples = Some(5000);
        assert_eq!(s.resolve("gsm8k").unwrap_err().field, "n_samples");
    }
}
