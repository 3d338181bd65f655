//! `specgate oci ARGS` (or the binary called as `specgate-runtime`): the
//! runc-compatible wrapper (`crate::wrapper`), given runc's command
//! line as received.

use std::ffi::OsString;
use std::path::PathBuf;

pub use crate::wrapper::RUNTIME_NAME;

/// Runs the wrapper: on success it does not return, the process having
/// become the runtime. A failure is reported on stderr and in the
/// runtime's log, and gives runc's exit status 1.
pub(super) fn run(cache_dir: Option<PathBuf>, args: &[OsString]) -> anyhow::Result<u8> {
    let failure = crate::wrapper::run(cache_dir, args);
    failure.report();
    Ok(failure.status())
}
