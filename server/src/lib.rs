//! Crucible server.
