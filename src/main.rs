//! `tessera`: parse arguments, run, map errors to an exit code. The only place that uses
//! `anyhow`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tessera::cli::Cli::parse();
    match tessera::cli::run(cli).map_err(anyhow::Error::from) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
