//! The evaluation protocols a job can name: `mimo` (the report's: T = 0.6, top-p 0.95, avg@32 on
//! AIME, avg@8 on code and GPQA, 1 sample elsewhere) and `greedy` (T = 0, one sample). The server
//! resolves them at submission (`EvalSpec::resolve`), so every eval record stores the concrete n
//! and sampling it ran.

use crate::sampling::SamplingParams;
use crate::tracking::wire_enum;
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
