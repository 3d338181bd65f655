//! Link-time layout of the `specgate` binary, which the OCI runtime
//! wrapper starts once per container:
//!
//! - packed relative relocations (DT_RELR) where the C library can load
//!   them (glibc 2.36 and later): the binary is a position-independent
//!   executable of about 27 000 relative relocations, which the loader
//!   reads at 24 bytes each in the classic format, a few kilobytes in all
//!   in the packed one;
//! - with rustc's own LLD (this target's default linker), the functions a
//!   wrapper `create` runs placed side by side, in the order of
//!   `link-order.txt` (made by `bench/link_order.py`): about 1 MB of a
//!   16 MB text, whose first touches are otherwise some 90 page faults.
//!
//! Cross builds, other C libraries and other linkers get neither.

use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=link-order.txt");
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target != std::env::var("HOST").unwrap_or_default() || !target.ends_with("-linux-gnu") {
        return;
    }
    if glibc_loads_relr() {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    if target == "x86_64-unknown-linux-gnu" && links_with_rust_lld() {
        let order = std::path::absolute("link-order.txt").expect("the crate's directory");
        println!(
            "cargo::rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        // Names of functions since renamed or inlined are only skipped.
        println!("cargo::rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
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

/// Whether the link is rustc's default for this target, its bundled LLD:
/// no linker configured for the target, none in the flags.
fn links_with_rust_lld() -> bool {
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    std::env::var_os("RUSTC_LINKER").is_none() && !flags.contains("linker")
}
