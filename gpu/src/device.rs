//! Picks the device the model runs on: CUDA when the crate is built with the `cuda` feature and
//! a GPU is present, else the CPU. CI cannot build the CUDA path (it needs nvcc), so that branch
//! is compiled only with the feature.

use candle_core::Device;

/// The best available device; `Device::Cpu` without the `cuda` feature.
pub fn best_device() -> Result<Device, candle_core::Error> {
    #[cfg(feature = "cuda")]
    {
        if candle_core::utils::cuda_is_available() {
            return Device::new_cuda(0);
        }
        tracing::warn!(
            "built with the cuda feature but no CUDA device is available; using the CPU"
        );
    }
    Ok(Device::Cpu)
}
