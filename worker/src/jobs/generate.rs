//! The `generate` job: complete each prompt once and store the outputs as the run's completions.

use super::JobError;
use super::eval::ModelHandle;
use crate::client::ServerClient;
use crate::heartbeat::JobSignals;
use crucible_types::{CompletionRecord, GenerateSpec, Lease, Speculative};

/// Prompts per generation call (and per upload).
const CHUNK: usize = 16;

/// Runs the job; `Err` carries the reason it failed.
pub(crate) fn run(
    client: &ServerClient,
    lease: &Lease,
    spec: &GenerateSpec,
    signals: &JobSignals,
) -> Result<(), JobError> {
    let run_id = lease
        .job
        .run_id
        .ok_or_else(|| JobError::invalid("generate job has no run"))?;
    let model = lease
        .model
        .as_ref()
        .ok_or_else(|| JobError::invalid("generate job without a model"))?;
    let mut handle = ModelHandle::open(&model.source, lease.job.requirements.device)?;
    let mut generator = handle.generator(Speculative::Off);
    let total = spec.prompts.len() as u64;
    for (c, chunk) in spec.prompts.chunks(CHUNK).enumerate() {
        if signals.should_stop() {
            return Ok(());
        }
        let outputs = generator
            .generate(chunk, &spec.sampling, 1)
            .map_err(JobError::internal)?;
        let records = chunk
            .iter()
            .zip(outputs)
            .enumerate()
            .filter_map(|(i, (prompt, mut outs))| {
                let out = outs.pop()?;
                let idx = c * CHUNK + i;
                Some(CompletionRecord {
                    step: 0,
                    group_idx: idx as i32,
                    sample_idx: 0,
                    problem_id: idx.to_string(),
                    prompt: prompt.clone(),
                    completion: out.text,
                    reward: None,
                    verdict: None,
                    tokens: out.tokens as i32,
                    truncated: out.truncated,
                })
            })
            .collect();
        client
            .upload_completions(run_id, records)
            .map_err(JobError::internal)?;
        signals.set_progress(
            ((c + 1) * CHUNK).min(spec.prompts.len()) as u64,
            total,
            "generating",
        );
    }
    Ok(())
}
