//! Picks the device the model runs on: CUDA when the crate is built with the `cuda` feature and
//! a GPU is present, else the CPU. `CRUCIBLE_DEVICE=cpu|cuda` forces a choice (parity checks run
//! the same binary on both). CI cannot build the CUDA path (it needs nvcc), so that branch is
//! compiled only with the feature.

use candle_core::Device;

/// Environment variable that forces the device.
pub const DEVICE_ENV: &str = "CRUCIBLE_DEVICE";

/// The best available device, or the one `CRUCIBLE_DEVICE` names; `Device::Cpu` without the
/// `cuda` feature.
pub fn best_device() -> Result<Device, candle_core::Error> {
    match std::env::var(DEVICE_ENV).as_deref() {
        Ok("cpu") => return Ok(Device::Cpu),
        Ok("cuda") => return Device::new_cuda(0),
        Ok(other) => {
            return Err(candle_core::Error::Msg(format!(
                "{DEVICE_ENV}={other:?}: expected cpu or cuda"
            )));
        }
        Err(_) => {}
    }
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
