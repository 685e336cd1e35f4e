//! What the harness needs of a model: n completions per prompt.
//!
//! Why a trait: the same benchmark, grading and scores must apply to the local MiMo engine and to
//! a model served elsewhere (vLLM, SGLang) behind an OpenAI-compatible endpoint.

use crucible_types::sampling::SamplingParams;

use super::EvalError;

/// One completion of one prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub text: String,
    /// Completion tokens (as the model or the endpoint counted them).
    pub tokens: u32,
    /// Stopped by the token budget rather than by the model.
    pub truncated: bool,
}

/// A model that completes user messages.
pub trait Generator {
    /// `n` completions of every prompt (a user message; the generator applies the chat format),
    /// outer index = prompt, inner = sample. Sample j uses seed `sampling.seed + j`, so a run is
    /// reproducible and a retried chunk regenerates the same samples.
    fn generate(
        &mut self,
        prompts: &[String],
        sampling: &SamplingParams,
        n: u32,
    ) -> Result<Vec<Vec<Completion>>, EvalError>;
}

/// Lends a generator without giving it up (the worker keeps its endpoint client across benchmarks).
impl<G: Generator + ?Sized> Generator for &mut G {
    fn generate(
        &mut self,
        prompts: &[String],
        sampling: &SamplingParams,
        n: u32,
    ) -> Result<Vec<Vec<Completion>>, EvalError> {
        (**self).generate(prompts, sampling, n)
    }
}

/// The sampling of sample `j`: the seed offset by the sample index.
pub(crate) fn sample_params(sampling: &SamplingParams, j: u32) -> SamplingParams {
    SamplingParams {
        seed: sampling.seed.wrapping_add(u64::from(j)),
        ..sampling.clone()
    }
}
