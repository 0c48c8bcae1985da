//! The `portcullis` command: parses the command line, sets up logging and runs the chosen
//! part of the stack until SIGINT/SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use portcullis::cli::Cli;

/// mimalloc: measurably faster than the system allocator on the proxy's many small,
/// short-lived allocations (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The async runtime for `worker_threads` (default: one per CPU). With one worker thread,
/// tokio's current-thread runtime: every task runs on the main thread, as in an nginx
/// worker, without the work-stealing scheduler's cross-thread bookkeeping (measured in
/// docs/performance.md); otherwise the multi-thread runtime.
fn runtime(worker_threads: Option<usize>) -> tokio::runtime::Builder {
    let mut builder = match worker_threads {
        Some(0 | 1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all();
    builder
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    portcullis::logging::init(&cli.log);
    let runtime = match runtime(cli.worker_threads).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(portcullis::commands::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<portcullis::migrations::Exit>() {
            // Already reported; only the status is left to give.
            Some(exit) => ExitCode::from(exit.0),
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
