//! A forward pass as a list of kernel launches, recorded first and then encoded into one
//! compute pass and one submission: every launch's parameters share one uniform buffer, so a
//! decode step costs one upload, one submit and one readback however many layers there are.

use super::context::{WgpuDevice, WgpuError};
use super::kernel::Kernel;

/// Parameter blocks sit at multiples of this (the largest uniform offset alignment WebGPU
/// allows an adapter to demand).
const PARAMS_ALIGN: usize = 256;

/// Most workgroups along one dispatch axis (WebGPU's guaranteed minimum limit); larger grids
/// fold into a second axis and the kernels bound-check.
const MAX_GROUPS_PER_AXIS: u32 = 65_535;

struct Launch {
    kernel: Kernel,
    params_at: u64,
    params_len: u64,
    buffers: Vec<wgpu::Buffer>,
    groups: (u32, u32),
}

/// Kernel launches recorded for one submission.
pub struct Plan<'g> {
    gpu: &'g WgpuDevice,
    params: Vec<u8>,
    launches: Vec<Launch>,
}

impl<'g> Plan<'g> {
    /// An empty plan on `gpu`.
    pub fn new(gpu: &'g WgpuDevice) -> Self {
        Self {
            gpu,
            params: Vec::new(),
            launches: Vec::new(),
        }
    }

    /// The device the plan runs on.
    pub fn gpu(&self) -> &'g WgpuDevice {
        self.gpu
    }

    /// Records a launch of `kernel` over `groups` workgroups with `params` at binding 0 and
    /// `buffers` at bindings 1.. in order.
    pub(crate) fn launch<P: bytemuck::Pod>(
        &mut self,
        kernel: Kernel,
        params: &P,
        buffers: &[&wgpu::Buffer],
        groups: u32,
    ) {
        self.launch_grid(kernel, params, buffers, fold(groups.max(1)));
    }

    /// [`Self::launch`] over an explicit `(x, y)` grid (tiled kernels index both axes).
    pub(crate) fn launch_grid<P: bytemuck::Pod>(
        &mut self,
        kernel: Kernel,
        params: &P,
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32),
    ) {
        let at = self.params.len().next_multiple_of(PARAMS_ALIGN);
        self.params.resize(at, 0);
        self.params.extend_from_slice(bytemuck::bytes_of(params));
        self.launches.push(Launch {
            kernel,
            params_at: at as u64,
            params_len: std::mem::size_of::<P>() as u64,
            buffers: buffers.iter().map(|&b| b.clone()).collect(),
            groups,
        });
    }

    /// Runs every launch in one compute pass and returns the first `words` f32 words of
    /// `read` (none when `words` is 0).
    pub fn run(self, read: &wgpu::Buffer, words: usize) -> Result<Vec<f32>, WgpuError> {
        let device = &self.gpu.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let usage = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST;
        let params = self
            .gpu
            .temp_with("launch parameters", self.params.len() as u64, usage)?;
        self.gpu.write(&params, &self.params);
        let bind_groups: Vec<wgpu::BindGroup> =
            self.launches
                .iter()
                .map(|l| {
                    let mut entries = vec![wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &params,
                            offset: l.params_at,
                            size: std::num::NonZeroU64::new(l.params_len),
                        }),
                    }];
                    entries.extend(l.buffers.iter().enumerate().map(|(i, b)| {
                        wgpu::BindGroupEntry {
                            binding: i as u32 + 1,
                            resource: b.as_entire_binding(),
                        }
                    }));
                    device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout: &self.gpu.pipeline(l.kernel).get_bind_group_layout(0),
                        entries: &entries,
                    })
                })
                .collect();
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("forward"),
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("forward"),
                timestamp_writes: None,
            });
            for (l, group) in self.launches.iter().zip(&bind_groups) {
                pass.set_pipeline(self.gpu.pipeline(l.kernel));
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(l.groups.0, l.groups.1, 1);
            }
        }
        let result = self.gpu.finish_and_read(encoder, read, words);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(WgpuError::Submit(e.to_string()));
        }
        result
    }
}

/// A grid of `groups` workgroups as (x, y) within the per-axis limit.
fn fold(groups: u32) -> (u32, u32) {
    if groups <= MAX_GROUPS_PER_AXIS {
        (groups, 1)
    } else {
        (MAX_GROUPS_PER_AXIS, groups.div_ceil(MAX_GROUPS_PER_AXIS))
    }
}

/// Workgroups of 64 threads that cover `n` elements, one thread each.
pub(crate) fn groups_for(n: usize) -> u32 {
    n.div_ceil(64) as u32
}
