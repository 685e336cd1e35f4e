//! One runner per job kind; each reports through the server client and honours the job's signals.

pub mod eval;
pub mod generate;
pub mod rl;
mod sink;
pub mod train;
