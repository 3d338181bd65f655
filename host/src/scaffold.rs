//! `specgate plugin new`: a Rust plugin crate that builds as it is, outside
//! this repository too.
//!
//! The crate carries the contract it builds against (the newest version,
//! embedded in this binary) under `wit/deps/`, and a world of its own that
//! exports exactly the chosen hooks, so that a plugin's reach is visible in
//! its type. It depends on wit-bindgen alone, at the version, and with the
//! lock file, of this repository's plugins: a build reuses what building
//! them fetched.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The contract version the crate builds against.
pub const CONTRACT_VERSION: &str = "0.1.1";

/// The contract's files, as `wit/0.1.1/` has them.
const CONTRACT: [(&str, &str); 5] = [
    ("hooks.wit", include_str!("../../wit/0.1.1/hooks.wit")),
    ("host.wit", include_str!("../../wit/0.1.1/host.wit")),
    ("plugin.wit", include_str!("../../wit/0.1.1/plugin.wit")),
    ("types.wit", include_str!("../../wit/0.1.1/types.wit")),
    ("worlds.wit", include_str!("../../wit/0.1.1/worlds.wit")),
];

/// The lock file of the crate: wit-bindgen and what it needs, at the
/// versions `plugins/Cargo.lock` has.
const LOCK: &str = include_str!("scaffold/Cargo.lock.in");

/// The hooks a new plugin can export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HookName {
    /// Adjust namespaces and user-namespace id mappings.
    Namespaces,
    /// Adjust capabilities.
    Capabilities,
    /// Adjust mounts.
    Mounts,
    /// Accept or refuse the final container.
    Validate,
}

impl HookName {
    /// The interface's name in the contract.
    pub fn interface(self) -> &'static str {
        match self {
            HookName::Namespaces => "namespaces",
            HookName::Capabilities => "capabilities",
            HookName::Mounts => "mounts",
            HookName::Validate => "validate",
        }
    }
}

/// Why a crate was not written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be a plugin's.
    #[error(
        "plugin name `{0}`: use lowercase letters, digits and dashes, each dash-separated word \
         starting with a letter (e.g. `no-raw-sockets`)"
    )]
    BadName(String),
    /// The name is one Rust or Cargo keeps for itself.
    #[error("plugin name `{0}` is reserved by Rust; pick another")]
    Reserved(String),
    /// No hook was chosen.
    #[error("--hooks: a plugin needs at least one hook")]
    NoHooks,
    /// The target directory holds something already.
    #[error("{} exists and is not an empty directory", .0.display())]
    NotEmpty(PathBuf),
    /// Writing failed; what was written is removed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// Writes the crate for plugin `name` with `hooks` into `dir`, which must
/// not exist or be empty. On failure nothing is left: a directory this
/// created is removed, an empty one given is emptied again.
pub fn write(name: &str, hooks: &[HookName], dir: &Path) -> Result<(), ScaffoldError> {
    check_name(name)?;
    let mut hooks: Vec<HookName> = hooks.to_vec();
    hooks.sort_by_key(|h| *h as u8);
    hooks.dedup();
    if hooks.is_empty() {
        return Err(ScaffoldError::NoHooks);
    }
    let created = match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
            }
            false
        }
        Err(e) if e.kind() == ErrorKind::NotFound => true,
        Err(e) if e.kind() == ErrorKind::NotADirectory => {
            return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
        }
        Err(source) => {
            return Err(ScaffoldError::Write {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let result = files(name, &hooks)
        .into_iter()
        .try_for_each(|(relative, content)| {
            let path = dir.join(relative);
            let write = |path: &Path| {
                fs::create_dir_all(path.parent().unwrap_or(dir))?;
                fs::write(path, content)
            };
            write(&path).map_err(|source| ScaffoldError::Write { path, source })
        });
    if result.is_err() {
        if created {
            let _ = fs::remove_dir_all(dir);
        } else if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                let _ = fs::remove_dir_all(entry.path()).or_else(|_| fs::remove_file(entry.path()));
            }
        }
    }
    result
}

/// A name usable as a crate, a WIT word and a chain entry at once.
fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let word = |w: &str| {
        w.starts_with(|c: char| c.is_ascii_lowercase())
            && w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    if name.is_empty() || name.len() > 64 || !name.split('-').all(word) {
        return Err(ScaffoldError::BadName(name.to_string()));
    }
    const RESERVED: [&str; 8] = [
        "alloc",
        "core",
        "crate",
        "proc-macro",
        "self",
        "std",
        "super",
        "test",
    ];
    if RESERVED.contains(&name) {
        return Err(ScaffoldError::Reserved(name.to_string()));
    }
    Ok(())
}

/// Every file of the crate, by path relative to its directory.
fn files(name: &str, hooks: &[HookName]) -> Vec<(String, String)> {
    let mut files = vec![
        ("Cargo.toml".to_string(), cargo_toml(name)),
        ("Cargo.lock".to_string(), LOCK.replace("@NAME@", name)),
        (
            ".cargo/config.toml".to_string(),
            "# Plugins are WebAssembly components.\n[build]\ntarget = \"wasm32-wasip2\"\n"
                .to_string(),
        ),
        (".gitignore".to_string(), "/target\n".to_string()),
        ("src/lib.rs".to_string(), lib_rs(name, hooks)),
        ("wit/world.wit".to_string(), world_wit(hooks)),
        ("README.md".to_string(), readme(name, hooks)),
    ];
    for (file, text) in CONTRACT {
        files.push((
            format!("wit/deps/specgate-policy-{CONTRACT_VERSION}/{file}"),
            text.to_string(),
        ));
    }
    files
}

fn cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A plugin is a WebAssembly component: a C-style dynamic library.
[lib]
crate-type = ["cdylib"]

[dependencies]
wit-bindgen = "0.61.1"

# Small components: specgate compiles a plugin on its first load.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = "debuginfo"
panic = "abort"

# A crate of its own, even inside another project's directory.
[workspace]
"#
    )
}

fn world_wit(hooks: &[HookName]) -> String {
    let mut text = String::from(
        "package local:plugin;\n\n\
         /// This plugin's world: what the host offers, what every plugin\n\
         /// exports, and the hooks this one has. Add or remove an `export`\n\
         /// line (and its `impl` in src/lib.rs) to change its hooks.\n\
         world policy-plugin {\n",
    );
    text.push_str(&format!(
        "    import specgate:policy/host@{CONTRACT_VERSION};\n    export specgate:policy/plugin@{CONTRACT_VERSION};\n"
    ));
    for hook in hooks {
        text.push_str(&format!(
            "    export specgate:policy/{}@{CONTRACT_VERSION};\n",
            hook.interface()
        ));
    }
    text.push_str("}\n");
    text
}

fn lib_rs(name: &str, hooks: &[HookName]) -> String {
    let mut uses = vec!["Container", "Denial"];
    for hook in hooks {
        match hook {
            HookName::Namespaces => uses.push("NamespaceChange"),
            HookName::Capabilities => uses.push("CapabilityChange"),
            HookName::Mounts => uses.push("MountChange"),
            HookName::Validate => {}
        }
    }
    uses.sort();
    let mut text = format!(
        r#"//! {name}: a specgate policy plugin.
//!
//! Each hook below is called with a read-only view of the container and
//! returns typed changes (or a denial); specgate applies them, in order,
//! and records them in the audit log. As written, every hook changes
//! nothing.

// The contract's interfaces live in another package (wit/deps/): generate
// bindings for them here too.
wit_bindgen::generate!({{
    world: "policy-plugin",
    path: "wit",
    generate_all,
}});

use specgate::policy::host::{{self, Level}};
use specgate::policy::types::{{{uses}}};

struct Plugin;

impl exports::specgate::policy::plugin::Guest for Plugin {{
    fn describe() -> exports::specgate::policy::plugin::Info {{
        exports::specgate::policy::plugin::Info {{
            name: "{name}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "changes nothing yet".into(),
        }}
    }}

    /// The operator's settings (`--plugin-setting {name}.KEY=VALUE`, or
    /// the policy file's `settings`), once per run before any hook.
    fn configure(settings: Vec<(String, String)>) -> Result<(), String> {{
        // None are known yet: refuse any, so that a misspelt setting is an
        // error rather than silently ignored.
        match settings.first() {{
            None => Ok(()),
            Some((key, _)) => Err(format!("unknown setting `{{key}}`")),
        }}
    }}
}}
"#,
        uses = uses.join(", ")
    );
    for hook in hooks {
        let (function, ok, returns, outcome) = match hook {
            HookName::Namespaces => (
                "adjust",
                "Ok(Vec::new())",
                "Vec<NamespaceChange>",
                "unchanged",
            ),
            HookName::Capabilities => (
                "adjust",
                "Ok(Vec::new())",
                "Vec<CapabilityChange>",
                "unchanged",
            ),
            HookName::Mounts => ("adjust", "Ok(Vec::new())", "Vec<MountChange>", "unchanged"),
            HookName::Validate => ("check", "Ok(())", "()", "accepted"),
        };
        let interface = hook.interface();
        text.push_str(&format!(
            r#"
impl exports::specgate::policy::{interface}::Guest for Plugin {{
    fn {function}(container: Container) -> Result<{returns}, Denial> {{
        // Only build messages the host will write.
        if host::log_enabled(Level::Debug) {{
            host::log(
                Level::Debug,
                &format!("{interface}: container {{}} {outcome}", container.id),
            );
        }}
        {ok}
    }}
}}
"#
        ));
    }
    text.push_str("\nexport!(Plugin);\n");
    text
}

fn readme(name: &str, hooks: &[HookName]) -> String {
    let file = name.replace('-', "_");
    let hooks: Vec<&str> = hooks.iter().map(|h| h.interface()).collect();
    format!(
        r#"# {name}

A specgate policy plugin with the hooks: {hooks}.

## Build

    rustup target add wasm32-wasip2
    cargo build --release --target wasm32-wasip2

The plugin is `target/wasm32-wasip2/release/{file}.wasm`.

## Try it

    specgate plugin inspect target/wasm32-wasip2/release/{file}.wasm
    specgate plugin trace --plugin target/wasm32-wasip2/release/{file}.wasm -- sh
    SPECGATE_LOG=specgate::plugin=debug specgate spec \
        --plugin target/wasm32-wasip2/release/{file}.wasm -- sh

## The contract

`wit/deps/specgate-policy-{CONTRACT_VERSION}/` is the contract this plugin
builds against, `specgate:policy@{CONTRACT_VERSION}`; `wit/world.wit` says which
hooks it exports. Settings arrive in `configure`; `host::log` writes to
specgate's log (shown with `SPECGATE_LOG=specgate::plugin=debug`).
"#,
        hooks = hooks.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_crates_and_wit_words() {
        for good in ["no-raw", "p2", "a-b2-c"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "No", "2fast", "a--b", "a-2b", "a_b", "a-", "x/y", "é"] {
            assert!(
                matches!(check_name(bad), Err(ScaffoldError::BadName(_))),
                "{bad}"
            );
        }
        assert!(matches!(check_name("std"), Err(ScaffoldError::Reserved(_))));
    }

    #[test]
    fn a_non_empty_directory_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("keep"), "x").unwrap();
        let err = write("p", &[HookName::Validate], dir.path()).unwrap_err();
        assert!(matches!(err, ScaffoldError::NotEmpty(_)));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_world_exports_the_chosen_hooks() {
        let world = world_wit(&[HookName::Capabilities, HookName::Validate]);
        assert!(world.contains("export specgate:policy/capabilities@0.1.1;"));
        assert!(world.contains("export specgate:policy/validate@0.1.1;"));
        assert!(!world.contains("mounts"));
    }
}
