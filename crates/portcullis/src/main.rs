//! The `portcullis` command: parses the command line, sets up logging and runs the chosen
//! part of the stack until SIGINT/SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use portcullis::cli::Cli;

/// mimalloc: measurably faster than the system allocator on the proxy's many small,
/// short-lived allocations (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    portcullis::logging::init(&cli.log);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = cli.worker_threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = match runtime.build() {
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
