//! Generation engine: KV cache and batching, sampling, the decode loop and streaming text.

pub mod kv_cache;
