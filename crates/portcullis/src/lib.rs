//! The `portcullis` binary's library half: the command line, the `up` stack and the
//! in-process adapters that let components share a process without depending on each other.
//!
//! Key decision: `up` is assembled by [`stack::Stack`] from pre-bound listeners, so the
//! binary and the test harness build exactly the same app — the harness just binds every
//! listener on `127.0.0.1:0`.

pub mod cli;
pub mod commands;
pub mod logging;
pub mod migrations;
pub mod resolver;
pub mod stack;
