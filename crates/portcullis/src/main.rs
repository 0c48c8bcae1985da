//! The `portcullis` command: parses the command line, sets up logging and runs the chosen
//! part of the stack until SIGINT/SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use portcullis::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    portcullis::logging::init(&cli.log);
    match portcullis::commands::run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
