//! Link-time layout of the `specgate` binary, which an engine starts once
//! per container: packed relative relocations (DT_RELR) where the C
//! library can load them (glibc 2.36 and later). The binary is a
//! position-independent executable of about 27 000 relative relocations,
//! which the loader reads at 24 bytes each in the classic format, a few
//! kilobytes in all in the packed one. Cross builds and other C libraries
//! get the classic format.

use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target != std::env::var("HOST").unwrap_or_default() || !target.ends_with("-linux-gnu") {
        return;
    }
    if glibc_loads_relr() {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether this machine's glibc, the one the binary links against, is
/// 2.36 or later.
fn glibc_loads_relr() -> bool {
    let Ok(output) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    // "glibc 2.36"
    let text = String::from_utf8_lossy(&output.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}
