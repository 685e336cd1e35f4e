//! The adapter, its device and queue, and the compiled kernels: opened once per process and
//! shared by every model that runs on it.

use std::collections::HashMap;
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use wgpu::util::DeviceExt;

use super::kernel::Kernel;

/// Longest a submission may take before it counts as hung (lavapipe can wedge on an unbounded
/// wait; a bounded one turns that into an error).
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(600);

/// What can go wrong on the wgpu backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WgpuError {
    /// No adapter answered (no Vulkan/Metal/DX12/GL driver, or the one asked for is absent).
    #[error(
        "no wgpu adapter: {0} (on Linux, `apt-get install mesa-vulkan-drivers` provides a software Vulkan)"
    )]
    NoAdapter(String),
    /// The adapter refused to open a device with the limits the model needs.
    #[error("the wgpu adapter {adapter} refused a device: {message}")]
    Device { adapter: String, message: String },
    /// A buffer would exceed what the adapter can bind.
    #[error("{what} needs {bytes} bytes but the adapter binds at most {limit} per buffer")]
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
    },
    /// The adapter rejected or failed a submission (a validation error, lost device, timeout).
    #[error("wgpu: {0}")]
    Submit(String),
}

/// An opened adapter with the kernels compiled for it.
pub struct WgpuDevice {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    max_binding: u64,
    pipelines: HashMap<Kernel, wgpu::ComputePipeline>,
    /// Time spent blocked on the adapter since the last [`Self::take_wait_time`].
    waited: Mutex<Duration>,
    /// Temporaries handed back after use, by usage and size class.
    pool: Mutex<HashMap<(wgpu::BufferUsages, u64), Vec<wgpu::Buffer>>>,
}

/// Usage of activation and upload temporaries.
const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// A pooled buffer, handed back to the pool when dropped: forward passes reuse their
/// activations, uploads, parameter blocks and readback staging instead of allocating them each
/// step. Only dropped once its submission has completed (every run waits for it).
pub(crate) struct Temp<'g> {
    gpu: &'g WgpuDevice,
    key: (wgpu::BufferUsages, u64),
    buffer: Option<wgpu::Buffer>,
}

impl std::ops::Deref for Temp<'_> {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        self.buffer
            .as_ref()
            .expect("a temporary holds its buffer until dropped")
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            let mut pool = self.gpu.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.entry(self.key).or_default().push(buffer);
        }
    }
}

impl std::fmt::Debug for WgpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgpuDevice")
            .field("adapter", &self.describe())
            .finish()
    }
}

impl WgpuDevice {
    /// Opens the adapter wgpu prefers (a discrete GPU before an integrated one before a
    /// software one; `WGPU_BACKEND` and `WGPU_ADAPTER_NAME` narrow the choice) and compiles
    /// every kernel.
    pub fn open() -> Result<Self, WgpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle().with_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| WgpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("crucible"),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| WgpuError::Device {
            adapter: info.name.clone(),
            message: e.to_string(),
        })?;
        let max_binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipelines = Kernel::ALL
            .iter()
            .map(|&kernel| (kernel, kernel.pipeline(&device)))
            .collect();
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(WgpuError::Device {
                adapter: info.name.clone(),
                message: format!("a kernel did not compile: {e}"),
            });
        }
        tracing::info!(adapter = %info.name, backend = ?info.backend, kind = ?info.device_type, "wgpu device open");
        Ok(Self {
            device,
            queue,
            info,
            max_binding,
            pipelines,
            waited: Mutex::new(Duration::ZERO),
            pool: Mutex::new(HashMap::new()),
        })
    }

    /// `name (backend, kind)`, for logs and for `crucible up` to say what its worker runs on.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// Whether the adapter is a software renderer on the CPU (lavapipe, llvmpipe, WARP): fine for
    /// tests, never chosen over candle's CPU path unless asked for.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Time the host spent waiting for the adapter to finish submissions since the last call:
    /// benchmarks split a decode step into host work (recording, uploads, submission) and
    /// this.
    pub fn take_wait_time(&self) -> Duration {
        std::mem::take(&mut *self.waited.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Most 4-byte words one buffer binding may hold on this adapter.
    pub(crate) fn max_binding_words(&self) -> usize {
        (self.max_binding / 4) as usize
    }

    pub(crate) fn pipeline(&self, kernel: Kernel) -> &wgpu::ComputePipeline {
        &self.pipelines[&kernel]
    }

    /// A storage buffer holding `data` (f32 or u32 words).
    pub fn upload<T: bytemuck::Pod>(
        &self,
        what: &str,
        data: &[T],
    ) -> Result<wgpu::Buffer, WgpuError> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        self.check_size(what, bytes.len() as u64)?;
        // An empty binding is invalid; one word keeps shapes with zero elements legal.
        let padded;
        let contents = if bytes.is_empty() {
            padded = [0u8; 4];
            &padded[..]
        } else {
            bytes
        };
        Ok(self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(what),
                contents,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            }))
    }

    /// A zeroed storage buffer of `words` 4-byte words.
    pub fn zeros(&self, what: &str, words: usize) -> Result<wgpu::Buffer, WgpuError> {
        let bytes = (words.max(1) * 4) as u64;
        self.check_size(what, bytes)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    /// A pooled buffer of at least `bytes` bytes with `usage` (sizes round up to a power of
    /// two, so a few classes serve every step).
    pub(crate) fn temp_with(
        &self,
        what: &str,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<Temp<'_>, WgpuError> {
        self.check_size(what, bytes)?;
        let rounded = bytes.max(16).next_power_of_two();
        let size = if rounded <= self.max_binding {
            rounded
        } else {
            bytes.next_multiple_of(4)
        };
        let key = (usage, size);
        let reused = self
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&key)
            .and_then(Vec::pop);
        let buffer = reused.unwrap_or_else(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(what),
                size,
                usage,
                mapped_at_creation: false,
            })
        });
        Ok(Temp {
            gpu: self,
            key,
            buffer: Some(buffer),
        })
    }

    /// A pooled storage buffer of at least `words` words, contents unspecified (the kernels
    /// write before they read).
    pub(crate) fn temp(&self, what: &str, words: usize) -> Result<Temp<'_>, WgpuError> {
        self.temp_with(what, (words * 4) as u64, STORAGE)
    }

    /// A pooled storage buffer starting with `data`.
    pub(crate) fn temp_upload<T: bytemuck::Pod>(
        &self,
        what: &str,
        data: &[T],
    ) -> Result<Temp<'_>, WgpuError> {
        let buffer = self.temp(what, data.len())?;
        self.write(&buffer, data);
        Ok(buffer)
    }

    /// Overwrites the start of `buffer` with `data`.
    pub fn write<T: bytemuck::Pod>(&self, buffer: &wgpu::Buffer, data: &[T]) {
        if !data.is_empty() {
            self.queue
                .write_buffer(buffer, 0, bytemuck::cast_slice(data));
        }
    }

    /// The first `words` f32 words of `buffer`, after every submitted pass has finished.
    pub fn read(&self, buffer: &wgpu::Buffer, words: usize) -> Result<Vec<f32>, WgpuError> {
        let encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        self.finish_and_read(encoder, buffer, words)
    }

    /// Submits `encoder` (copies between buffers); later submissions see its writes, so
    /// nothing waits for it.
    pub(crate) fn submit(&self, encoder: wgpu::CommandEncoder) {
        self.queue.submit([encoder.finish()]);
    }

    fn check_size(&self, what: &str, bytes: u64) -> Result<(), WgpuError> {
        if bytes > self.max_binding {
            return Err(WgpuError::TooLarge {
                what: what.to_string(),
                bytes,
                limit: self.max_binding,
            });
        }
        Ok(())
    }

    /// Appends a copy of `buffer`'s first `words` words to `encoder`, submits it and returns
    /// them; an empty read only waits for the submission.
    pub(crate) fn finish_and_read(
        &self,
        mut encoder: wgpu::CommandEncoder,
        buffer: &wgpu::Buffer,
        words: usize,
    ) -> Result<Vec<f32>, WgpuError> {
        let bytes = (words * 4) as u64;
        let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        let staging = if words > 0 {
            let staging = self.temp_with("readback", bytes, usage)?;
            encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes);
            Some(staging)
        } else {
            None
        };
        let index = self.queue.submit([encoder.finish()]);
        let Some(staging) = staging else {
            self.wait(index)?;
            return Ok(Vec::new());
        };
        let (sender, receiver) = mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, ..bytes, move |result| {
            let _ = sender.send(result);
        });
        self.wait(index)?;
        receiver
            .recv_timeout(SUBMIT_TIMEOUT)
            .map_err(|_| WgpuError::Submit("the readback never completed".into()))?
            .map_err(|e| WgpuError::Submit(format!("readback failed: {e}")))?;
        let view = staging
            .get_mapped_range(..bytes)
            .map_err(|e| WgpuError::Submit(format!("readback failed: {e}")))?;
        let data = bytemuck::cast_slice::<u8, f32>(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(data)
    }

    fn wait(&self, index: wgpu::SubmissionIndex) -> Result<(), WgpuError> {
        let started = Instant::now();
        let done = self
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: Some(SUBMIT_TIMEOUT),
            })
            .map(drop)
            .map_err(|e| WgpuError::Submit(e.to_string()));
        *self.waited.lock().unwrap_or_else(|e| e.into_inner()) += started.elapsed();
        done
    }
}
