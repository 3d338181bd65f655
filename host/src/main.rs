//! The `specgate` binary: parse, log, run, exit.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use specgate::cli::{self, Cli};

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    // Engines take one executable as their runtime: called through a link
    // named `specgate-runtime`, the binary is `specgate oci` and every
    // argument is the runtime's, so clap is not even built.
    let called_as = args.first().map(Path::new).and_then(Path::file_name);
    let cli = if called_as.is_some_and(|name| name == cli::RUNTIME_NAME) {
        args.remove(0);
        Cli::oci(args)
    } else {
        match Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(e) if e.use_stderr() => {
                // Malformed flags are specgate's failure, not the
                // container's: podman's 125, and clap's one-line message.
                let message = e.to_string();
                let first = message.lines().next().unwrap_or_default();
                eprintln!("specgate: {}", first.trim_start_matches("error: "));
                return ExitCode::from(cli::EXIT_FAILURE);
            }
            Err(e) => {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
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
