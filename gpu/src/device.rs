//! Picks where a model runs. Inference: CUDA when the crate is built with the `cuda` feature
//! and a GPU is present, else a hardware wgpu adapter, else the CPU. Training: candle only
//! (CUDA, else the CPU), since the wgpu kernels have no backward pass. `CRUCIBLE_DEVICE=cpu|
//! cuda|wgpu` forces a choice (parity checks run the same binary on each); a software wgpu
//! adapter (Mesa's lavapipe) is used only when asked for, as it is slower than candle's CPU
//! path. CI cannot build the CUDA path (it needs nvcc), so that branch compiles only with the
//! feature.

use std::sync::{Arc, OnceLock};

use candle_core::Device;

use crate::model::LoadOptions;
use crate::webgpu::{WgpuDevice, WgpuError};

/// Environment variable that forces the device.
pub const DEVICE_ENV: &str = "CRUCIBLE_DEVICE";

/// Why no device could be chosen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    #[error("{DEVICE_ENV}={0:?}: expected cpu, cuda or wgpu")]
    Unknown(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Wgpu(#[from] WgpuError),
}

/// Where inference runs.
#[derive(Debug, Clone)]
pub enum InferenceDevice {
    /// candle on the CPU or CUDA.
    Candle(Device),
    /// The WGSL kernels on a wgpu adapter.
    Wgpu(Arc<WgpuDevice>),
}

impl InferenceDevice {
    /// Load options (f32, MTP layers loaded) that put a model here.
    pub fn load_options(&self) -> LoadOptions {
        match self {
            InferenceDevice::Candle(device) => LoadOptions {
                device: device.clone(),
                ..LoadOptions::default()
            },
            InferenceDevice::Wgpu(gpu) => LoadOptions {
                wgpu: Some(Arc::clone(gpu)),
                ..LoadOptions::default()
            },
        }
    }

    /// The device as jobs name it in their requirements.
    pub fn kind(&self) -> crucible_types::jobs::Device {
        use crucible_types::jobs::Device as Kind;
        match self {
            InferenceDevice::Candle(Device::Cuda(_)) => Kind::Cuda,
            InferenceDevice::Candle(_) => Kind::Cpu,
            InferenceDevice::Wgpu(_) => Kind::Wgpu,
        }
    }

    /// `cpu`, `cuda`, or `wgpu: <adapter> (<backend>, <kind>)`.
    pub fn describe(&self) -> String {
        match self {
            InferenceDevice::Candle(Device::Cuda(_)) => "cuda".into(),
            InferenceDevice::Candle(_) => "cpu".into(),
            InferenceDevice::Wgpu(gpu) => format!("wgpu: {}", gpu.describe()),
        }
    }
}

/// The process's wgpu adapter, opened (and its kernels compiled) once.
pub fn wgpu_device() -> Result<Arc<WgpuDevice>, WgpuError> {
    static OPENED: OnceLock<Result<Arc<WgpuDevice>, String>> = OnceLock::new();
    OPENED
        .get_or_init(|| WgpuDevice::open().map(Arc::new).map_err(|e| e.to_string()))
        .clone()
        .map_err(WgpuError::NoAdapter)
}

/// Where inference should run (see the module docs for the order).
pub fn inference_device() -> Result<InferenceDevice, DeviceError> {
    match std::env::var(DEVICE_ENV).as_deref() {
        Ok("cpu") => return Ok(InferenceDevice::Candle(Device::Cpu)),
        Ok("cuda") => return Ok(InferenceDevice::Candle(Device::new_cuda(0)?)),
        Ok("wgpu") => return Ok(InferenceDevice::Wgpu(wgpu_device()?)),
        Ok(other) => return Err(DeviceError::Unknown(other.to_string())),
        Err(_) => {}
    }
    if let Some(cuda) = cuda_if_present() {
        return Ok(InferenceDevice::Candle(cuda));
    }
    match wgpu_device() {
        Ok(gpu) if !gpu.is_software() => Ok(InferenceDevice::Wgpu(gpu)),
        _ => Ok(InferenceDevice::Candle(Device::Cpu)),
    }
}

/// Where a job with the device requirement `required` runs: that device, or
/// [`inference_device`]'s choice when the job names none.
pub fn for_requirement(
    required: Option<crucible_types::jobs::Device>,
) -> Result<InferenceDevice, DeviceError> {
    use crucible_types::jobs::Device as Kind;
    Ok(match required {
        None => inference_device()?,
        Some(Kind::Cpu) => InferenceDevice::Candle(Device::Cpu),
        Some(Kind::Cuda) => InferenceDevice::Candle(Device::new_cuda(0)?),
        Some(Kind::Wgpu) => InferenceDevice::Wgpu(wgpu_device()?),
    })
}

/// Where training runs: CUDA when built with it and present (or forced), else the CPU; a
/// forced `wgpu` trains on candle, since the kernels have no backward pass.
pub fn best_device() -> Result<Device, candle_core::Error> {
    match std::env::var(DEVICE_ENV).as_deref() {
        Ok("cpu") => return Ok(Device::Cpu),
        Ok("cuda") => return Device::new_cuda(0),
        Ok("wgpu") => {
            tracing::info!("training runs on candle: the wgpu kernels have no backward pass");
        }
        Ok(other) => {
            return Err(candle_core::Error::Msg(
                DeviceError::Unknown(other.to_string()).to_string(),
            ));
        }
        Err(_) => {}
    }
    Ok(cuda_if_present().unwrap_or(Device::Cpu))
}

#[cfg(feature = "cuda")]
fn cuda_if_present() -> Option<Device> {
    if candle_core::utils::cuda_is_available() {
        return Device::new_cuda(0).ok();
    }
    tracing::warn!("built with the cuda feature but no CUDA device is available");
    None
}

#[cfg(not(feature = "cuda"))]
fn cuda_if_present() -> Option<Device> {
    None
}
