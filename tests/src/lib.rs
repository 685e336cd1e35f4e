//! Integration tests live in `tests/`; this library is empty by design. `src/bin/test_server.rs`
//! is the server process the crash tests kill and restart.
