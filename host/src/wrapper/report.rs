//! A failure reported as runc reports one: on stderr, and in the `--log`
//! file in the runtime's log format, where engines read the reason they
//! show.

use std::io::Write;
use std::path::PathBuf;

use super::error::{self, Error};
use super::invocation::{Invocation, LogFormat};
use crate::policy::audit;

/// A failed wrapper command: the error, and the runtime log the command
/// line named, if it could be read.
#[derive(Debug)]
pub struct Failure {
    error: Error,
    log: Option<(PathBuf, LogFormat)>,
}

impl Failure {
    /// `error`, to be logged where `inv` says (nowhere without one).
    pub(super) fn new(inv: Option<&Invocation>, error: Error) -> Self {
        let log = inv.and_then(|i| Some((i.log.clone()?, i.log_format())));
        Failure { error, log }
    }

    /// The exit status: runc's for a failed command.
    pub fn status(&self) -> u8 {
        self.error.status()
    }

    /// Writes the failure on stderr and, in the runtime's format, to its
    /// log; a log that cannot be written is said on stderr.
    pub fn report(&self) {
        let message = format!("specgate: {}", error::line(&self.error));
        eprintln!("{message}");
        let Some((log, format)) = &self.log else {
            return;
        };
        let line = log_line(*format, &audit::now(), &message);
        let written = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("specgate: runtime log {}: {e}", log.display());
        }
    }
}

/// One error line in runc's log format (logrus's JSON or text).
fn log_line(format: LogFormat, time: &str, message: &str) -> String {
    match format {
        LogFormat::Json => {
            let value = serde_json::json!({ "level": "error", "msg": message, "time": time });
            format!("{value}\n")
        }
        LogFormat::Text => {
            let quoted = serde_json::Value::from(message).to_string();
            format!("time=\"{time}\" level=error msg={quoted}\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_are_logged_as_runc_logs() {
        let json = log_line(
            LogFormat::Json,
            "2024-01-01T00:00:00.000Z",
            "specgate: plugin x: \"no\"",
        );
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["level"], "error");
        assert_eq!(value["msg"], "specgate: plugin x: \"no\"");
        assert_eq!(value["time"], "2024-01-01T00:00:00.000Z");
        assert!(json.ends_with('\n'));
        assert_eq!(
            log_line(LogFormat::Text, "2024-01-01T00:00:00.000Z", "a \"b\"\nc"),
            "time=\"2024-01-01T00:00:00.000Z\" level=error msg=\"a \\\"b\\\"\\nc\"\n"
        );
    }
}
