//! specgate's integration tests: the real binary, real compiled plugins,
//! real files (and, where a run needs it, the real OCI runtime).

mod util;

mod cache;
mod chroot;
mod example_plugins;
mod hostile;
mod inspect;
mod options;
mod policy;
mod refused_at_load;
mod rootfs_safety;
mod run;
mod stdio;
mod wrapper;
