//! The wgpu adapter for the backend tests, and the error measure they use.

use std::sync::Arc;

use crucible_gpu::webgpu::WgpuDevice;

/// Switch that turns a missing adapter from a skip into a failure (set in CI).
pub const REQUIRE_ENV: &str = "CRUCIBLE_REQUIRE_WGPU";

/// The process's adapter, or `None` (with a message) when there is none and CI does not
/// require one.
pub fn require_gpu() -> Option<Arc<WgpuDevice>> {
    match crucible_gpu::device::wgpu_device() {
        Ok(gpu) => Some(gpu),
        Err(e) if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") => {
            panic!("{REQUIRE_ENV}=1 but {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

/// Normalised mean squared error `Σ(got − want)² / Σ want²`.
pub fn nmse(got: &[f32], want: &[f32]) -> f64 {
    let err: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - f64::from(w)).powi(2))
        .sum();
    let norm: f64 = want.iter().map(|&w| f64::from(w).powi(2)).sum();
    if norm == 0.0 { err } else { err / norm }
}
