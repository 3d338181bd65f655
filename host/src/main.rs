//! The `specgate` binary: parse, log, run, exit.

use std::process::ExitCode;

use clap::Parser;
use specgate::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // Malformed flags are specgate's failure, not the container's:
            // podman's 125, and clap's one-line message.
            let message = e.to_string();
            let first = message.lines().next().unwrap_or_default();
            eprintln!("specgate: {}", first.trim_start_matches("error: "));
            return ExitCode::from(cli::EXIT_FAILURE);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    cli::init_tracing(cli.log_level.as_deref());
    match cli::run(cli) {
        Ok(status) => ExitCode::from(status),
        Err(error) => {
            eprintln!("specgate: {}", cli::message(&error));
            ExitCode::from(cli::exit_code(&error))
        }
    }
}
