//! Loading a plugin: read it within limits, compile it (or take it from
//! the cache), and find out what it exports before anything runs.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre};

use super::bindings::{PACKAGE, VERSION, capabilities, mounts, namespaces, plugin, validate};
use super::cache::Source;
use super::error::{PluginError, Problem, Stage};
use super::limits::Limits;
use super::sandbox::PluginState;

/// The hook interfaces, in the order a plugin's hooks are called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `namespaces.adjust`.
    Namespaces,
    /// `capabilities.adjust`.
    Capabilities,
    /// `mounts.adjust`.
    Mounts,
    /// `validate.check`.
    Validate,
}

impl Hook {
    /// Every hook, in calling order.
    pub const ALL: [Hook; 4] = [
        Hook::Namespaces,
        Hook::Capabilities,
        Hook::Mounts,
        Hook::Validate,
    ];

    /// The interface's name in the contract.
    pub fn interface(self) -> &'static str {
        match self {
            Hook::Namespaces => "namespaces",
            Hook::Capabilities => "capabilities",
            Hook::Mounts => "mounts",
            Hook::Validate => "validate",
        }
    }

    /// The stage a call to this hook is reported as.
    pub fn stage(self) -> Stage {
        match self {
            Hook::Namespaces => Stage::Namespaces,
            Hook::Capabilities => Stage::Capabilities,
            Hook::Mounts => Stage::Mounts,
            Hook::Validate => Stage::Validate,
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.interface())
    }
}

/// Export indices, looked up once at load so that each run only
/// instantiates and calls.
pub(super) struct Indices {
    pub plugin: plugin::GuestIndices,
    pub namespaces: Option<namespaces::GuestIndices>,
    pub capabilities: Option<capabilities::GuestIndices>,
    pub mounts: Option<mounts::GuestIndices>,
    pub validate: Option<validate::GuestIndices>,
}

/// A loaded plugin, ready to be instantiated for any number of runs.
pub struct Plugin {
    name: Arc<str>,
    path: PathBuf,
    size: u64,
    sha256: String,
    source: Source,
    load_time: std::time::Duration,
    exports: Vec<String>,
    imports: Vec<String>,
    hooks: Vec<Hook>,
    pub(super) pre: InstancePre<PluginState>,
    pub(super) indices: Indices,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The plugin's name in the chain.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shared name, for stores and log records.
    pub(super) fn shared_name(&self) -> Arc<str> {
        self.name.clone()
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file's sha256, in hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Whether it came from the cache.
    pub fn source(&self) -> Source {
        self.source
    }

    /// How long loading it took: reading, hashing, mapping its cache
    /// entry or compiling it, and checking it against the contract.
    pub fn load_time(&self) -> std::time::Duration {
        self.load_time
    }

    pub(super) fn set_load_time(&mut self, elapsed: std::time::Duration) {
        self.load_time = elapsed;
    }

    /// Every name the component exports.
    pub fn exports(&self) -> &[String] {
        &self.exports
    }

    /// Every name the component imports.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// The hooks it exports, in calling order.
    pub fn hooks(&self) -> &[Hook] {
        &self.hooks
    }

    /// Whether it exports this hook.
    pub fn has_hook(&self, hook: Hook) -> bool {
        self.hooks.contains(&hook)
    }

    /// The contract version it was built against, from its `plugin`
    /// export's name.
    pub fn contract(&self) -> Option<&str> {
        contract_of(&self.exports)
    }

    pub(super) fn error(&self, stage: Stage, problem: Problem) -> PluginError {
        PluginError {
            plugin: self.name.to_string(),
            path: self.path.clone(),
            stage,
            problem,
        }
    }
}

/// The name a plugin goes by when none is given: its file stem, with
/// underscores (Rust's crate file names) as dashes.
pub fn default_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().replace('_', "-"))
        .unwrap_or_else(|| path.display().to_string())
}

/// A plugin file, opened and checked to be a regular file within the size
/// limit, not yet read.
pub(super) struct OpenedFile {
    file: std::fs::File,
    meta: std::fs::Metadata,
}

/// A plugin file's size and digest, and its bytes when they were read.
pub(super) struct PluginFile {
    pub size: u64,
    pub sha256: String,
    /// `None` when the digest was remembered rather than computed now.
    pub bytes: Option<Vec<u8>>,
    /// What the file was when opened: the key its digest is remembered by.
    pub meta: std::fs::Metadata,
}

/// Opens a plugin file, refusing anything that is not a regular file of
/// acceptable size.
pub(super) fn open(path: &Path, limits: &Limits) -> Result<OpenedFile, Problem> {
    let file = std::fs::File::open(path).map_err(Problem::Read)?;
    let meta = file.metadata().map_err(Problem::Read)?;
    if !meta.is_file() {
        return Err(Problem::NotAFile);
    }
    if meta.len() > limits.plugin_file_size {
        return Err(Problem::TooLarge {
            size: meta.len(),
            limit: limits.plugin_file_size,
        });
    }
    Ok(OpenedFile { file, meta })
}

impl OpenedFile {
    /// What the file was when opened: the key of a remembered digest.
    pub fn metadata(&self) -> &std::fs::Metadata {
        &self.meta
    }

    /// The file as known by a remembered digest, without its bytes.
    pub fn known(&self, sha256: String) -> PluginFile {
        PluginFile {
            size: self.meta.len(),
            sha256,
            bytes: None,
            meta: self.meta.clone(),
        }
    }

    /// Reads the file whole, within the size limit, refuses it if it is
    /// not a component, and hashes it.
    pub fn read(&self, limits: &Limits) -> Result<PluginFile, Problem> {
        // Read no more than the limit, even if the file grows meanwhile.
        let mut bytes = Vec::with_capacity(self.meta.len() as usize);
        (&self.file)
            .take(limits.plugin_file_size + 1)
            .read_to_end(&mut bytes)
            .map_err(Problem::Read)?;
        if bytes.len() as u64 > limits.plugin_file_size {
            return Err(Problem::TooLarge {
                size: bytes.len() as u64,
                limit: limits.plugin_file_size,
            });
        }
        check_header(&bytes)?;
        Ok(PluginFile {
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
            bytes: Some(bytes),
            meta: self.meta.clone(),
        })
    }
}

/// Tells a component from a core module or a stray file before handing it
/// to the compiler, whose messages for those cases are cryptic.
pub fn check_header(bytes: &[u8]) -> Result<(), Problem> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_VERSION: &[u8] = &[1, 0, 0, 0];
    match bytes.get(..8) {
        Some(header) if header.starts_with(MAGIC) && &header[4..] == CORE_VERSION => {
            Err(Problem::CoreModule)
        }
        Some(header) if header.starts_with(MAGIC) => Ok(()),
        _ => Err(Problem::NotWasm),
    }
}

/// Checks a compiled component against the contract and prepares it.
pub(super) fn prepare(
    engine: &Engine,
    name: Arc<str>,
    path: &Path,
    file: &PluginFile,
    component: Component,
    source: Source,
) -> Result<Plugin, Problem> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    check_contract(&exports)?;
    let linker =
        super::engine::linker(engine, &imports).map_err(|e| Problem::Link(format!("{e:#}")))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| Problem::Link(format!("{e:#}")))?;
    let indices = Indices {
        plugin: plugin::GuestIndices::new(&pre).map_err(|e| Problem::Invalid(format!("{e:#}")))?,
        namespaces: namespaces::GuestIndices::new(&pre).ok(),
        capabilities: capabilities::GuestIndices::new(&pre).ok(),
        mounts: mounts::GuestIndices::new(&pre).ok(),
        validate: validate::GuestIndices::new(&pre).ok(),
    };
    let hooks: Vec<Hook> = Hook::ALL
        .into_iter()
        .filter(|hook| match hook {
            Hook::Namespaces => indices.namespaces.is_some(),
            Hook::Capabilities => indices.capabilities.is_some(),
            Hook::Mounts => indices.mounts.is_some(),
            Hook::Validate => indices.validate.is_some(),
        })
        .collect();
    if hooks.is_empty() {
        return Err(no_hooks(&exports));
    }
    Ok(Plugin {
        name,
        path: path.to_path_buf(),
        size: file.size,
        sha256: file.sha256.clone(),
        source,
        load_time: std::time::Duration::ZERO,
        exports,
        imports,
        hooks,
        pre,
        indices,
    })
}

/// The contract version a component's exports name, if any.
pub fn contract_of(exports: &[String]) -> Option<&str> {
    let prefix = format!("{PACKAGE}/plugin@");
    exports.iter().find_map(|e| e.strip_prefix(&prefix))
}

/// What a component declares, read from its outermost sections without
/// compiling or validating it: the names it imports and exports.
/// Nested modules and components are skipped unread.
pub(super) fn declared_names(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), Problem> {
    use wasmparser::{Chunk, Parser, Payload};
    let invalid = |e: wasmparser::BinaryReaderError| Problem::Invalid(e.to_string());
    let truncated = || Problem::Invalid("the component ends inside a section".into());
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut parser = Parser::new(0);
    let mut rest = bytes;
    loop {
        let (consumed, payload) = match parser.parse(rest, true).map_err(invalid)? {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            Chunk::NeedMoreData(_) => return Err(truncated()),
        };
        rest = rest.get(consumed..).ok_or_else(truncated)?;
        match payload {
            Payload::ComponentImportSection(section) => {
                for import in section {
                    imports.push(import.map_err(invalid)?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(section) => {
                for export in section {
                    exports.push(export.map_err(invalid)?.name.name.to_string());
                }
            }
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                rest = rest.get(unchecked_range.len()..).ok_or_else(truncated)?;
            }
            Payload::End(_) => return Ok((imports, exports)),
            _ => {}
        }
    }
}

/// The hooks a component's export names offer, by name only (a load also
/// checks their types), once the contract is checked.
pub(super) fn declared_hooks(exports: &[String]) -> Result<Vec<Hook>, Problem> {
    check_contract(exports)?;
    let offers = |hook: &Hook| {
        let prefix = format!("{PACKAGE}/{}@", hook.interface());
        exports
            .iter()
            .filter_map(|e| e.strip_prefix(&prefix))
            .any(|version| compatible(version, VERSION))
    };
    let hooks: Vec<Hook> = Hook::ALL.into_iter().filter(offers).collect();
    if hooks.is_empty() {
        return Err(no_hooks(exports));
    }
    Ok(hooks)
}

fn no_hooks(exports: &[String]) -> Problem {
    Problem::NoHooks {
        exports: list(exports),
        expected: Hook::ALL
            .iter()
            .map(|h| format!("{PACKAGE}/{h}@{VERSION}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A plugin must export `plugin` from a semver-compatible version of the
/// contract: for 0.x versions, the same minor version.
fn check_contract(exports: &[String]) -> Result<(), Problem> {
    let expected = format!("{PACKAGE}/plugin@{VERSION}");
    let prefix = format!("{PACKAGE}/plugin@");
    let Some(found) = exports.iter().find_map(|e| e.strip_prefix(&prefix)) else {
        return Err(Problem::WrongWorld {
            expected,
            exports: list(exports),
        });
    };
    if compatible(found, VERSION) {
        Ok(())
    } else {
        Err(Problem::IncompatibleVersion {
            found: format!("{PACKAGE}@{found}"),
            expected: format!("{PACKAGE}@{VERSION}"),
        })
    }
}

/// Semver compatibility as the component model's name matching sees it:
/// same major for 1.0 and later; same minor below 1.0.
fn compatible(found: &str, ours: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split(['.', '-', '+']);
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    match (parse(found), parse(ours)) {
        (Some((0, a)), Some((0, b))) => a == b,
        (Some((a, _)), Some((b, _))) => a == b && a != 0,
        _ => false,
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".to_string()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_components_from_the_rest() {
        assert!(check_header(b"\0asm\x0d\0\x01\0rest").is_ok());
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0rest"),
            Err(Problem::CoreModule)
        ));
        assert!(matches!(
            check_header(b"#!/bin/sh\n"),
            Err(Problem::NotWasm)
        ));
        assert!(matches!(check_header(b""), Err(Problem::NotWasm)));
    }

    #[test]
    fn contract_versions_follow_semver() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.3", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("1.0.0", "0.1.0"));
        assert!(compatible("1.4.0", "1.0.0"));
        assert!(!compatible("garbage", "0.1.0"));
    }

    #[test]
    fn contract_check_names_what_is_exported() {
        let err = check_contract(&["greet".to_string()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "does not export specgate:policy/plugin@0.1.1: it exports greet"
        );
        let err = check_contract(&["specgate:policy/plugin@0.2.0".to_string()]).unwrap_err();
        assert!(
            err.to_string()
                .contains("built against specgate:policy@0.2.0")
        );
    }

    #[test]
    fn default_names_come_from_the_file() {
        assert_eq!(
            default_name(Path::new("/x/drop_capabilities.wasm")),
            "drop-capabilities"
        );
    }
}
