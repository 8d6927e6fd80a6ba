//! The Kafka runtime of orderflow: the consumer loop, the intake and state consumers, the
//! dead-letter output, the log reader, and the operator commands. The domain decides; this
//! crate moves bytes, makes effects durable, and commits only after they are.

pub mod bench;
pub mod cli;
pub mod config;
pub mod consumer;
mod error;
pub mod fold;
pub mod intake;
pub mod kafka;
pub mod logread;
pub mod ops;
pub mod output;
pub mod report;
pub mod rules;
pub mod simulate;
pub mod state;
pub mod telemetry;

pub use error::RuntimeError;

/// The consumers allocate and free many small buffers per record (JSON, sled pages, Kafka
/// messages); a profile of the state consumer showed about 40 % of its CPU in glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
