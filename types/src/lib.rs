//! Wire and domain types shared by every Crucible crate.

pub mod sampling;
