//! specgate's integration tests: the real binary, real compiled plugins,
//! real files (and, where a run needs it, the real OCI runtime).

mod util;

mod audit;
mod cache;
mod chroot;
mod contract;
mod cri;
mod example_plugins;
mod gate;
mod gate_limits;
mod hostile;
mod imports;
mod inspect;
mod network;
mod options;
mod plugin_tools;
mod policy;
mod polyglot;
mod refused_at_load;
mod registry;
mod rootfs_safety;
mod rootless;
mod run;
mod scaffold;
mod state;
mod stdio;
mod wrapper;
mod wrapper_exec;
