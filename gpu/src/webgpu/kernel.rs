//! The compute kernels the backend compiles, each from its WGSL file in `ops/`.

/// Every compute kernel the backend compiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    Embedding,
    RmsNorm,
    MatVec,
    MatMul,
    Rope,
    KvAppend,
    Attention,
    SwiGlu,
}

impl Kernel {
    pub(crate) const ALL: [Kernel; 8] = [
        Kernel::Embedding,
        Kernel::RmsNorm,
        Kernel::MatVec,
        Kernel::MatMul,
        Kernel::Rope,
        Kernel::KvAppend,
        Kernel::Attention,
        Kernel::SwiGlu,
    ];

    fn source(self) -> &'static str {
        match self {
            Kernel::Embedding => include_str!("ops/embedding.wgsl"),
            Kernel::RmsNorm => include_str!("ops/rms_norm.wgsl"),
            Kernel::MatVec => include_str!("ops/matvec.wgsl"),
            Kernel::MatMul => include_str!("ops/matmul.wgsl"),
            Kernel::Rope => include_str!("ops/rope.wgsl"),
            Kernel::KvAppend => include_str!("ops/kv_append.wgsl"),
            Kernel::Attention => include_str!("ops/attention.wgsl"),
            Kernel::SwiGlu => include_str!("ops/swiglu.wgsl"),
        }
    }

    /// Compiles the kernel with a layout derived from its bindings.
    pub(crate) fn pipeline(self, device: &wgpu::Device) -> wgpu::ComputePipeline {
        let label = format!("{self:?}");
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(self.source().into()),
        });
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                // Every kernel writes its workgroup memory before reading it.
                zero_initialize_workgroup_memory: false,
                ..Default::default()
            },
            cache: None,
        })
    }
}
