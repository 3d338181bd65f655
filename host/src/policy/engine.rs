//! The one wasmtime engine of a process, and the linker that gives plugins
//! the contract's imports and a WASI with nothing granted.

use std::sync::OnceLock;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

use super::bindings::Policy;
use super::limits::EPOCH_TICK;
use super::sandbox::PluginState;

/// The process's engine: epoch interruption on, its epoch advanced by a
/// ticker thread that lives as long as the process.
pub fn engine() -> wasmtime::Result<&'static Engine> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = Config::new();
            config.epoch_interruption(true);
            config.wasm_component_model(true);
            let engine = Engine::new(&config).map_err(|e| e.to_string())?;
            let ticker = engine.clone();
            std::thread::Builder::new()
                .name("specgate-epoch".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(EPOCH_TICK);
                        ticker.increment_epoch();
                    }
                })
                .map_err(|e| format!("cannot start the epoch thread: {e}"))?;
            Ok(engine)
        })
        .as_ref()
        .map_err(|e| wasmtime::format_err!("cannot create the wasm engine: {e}"))
}

/// The linker every plugin is instantiated with: the `host` interface, and
/// WASI p2 backed by a context that grants nothing (see `sandbox.rs`).
/// Built once per process, on first use: loading builds it while plugin
/// files are read and mapped on other threads.
pub fn linker() -> wasmtime::Result<&'static Linker<PluginState>> {
    static LINKER: OnceLock<Result<Linker<PluginState>, String>> = OnceLock::new();
    LINKER
        .get_or_init(|| {
            let build = || -> wasmtime::Result<Linker<PluginState>> {
                let mut linker = Linker::new(engine()?);
                wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
                Policy::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
                Ok(linker)
            };
            build().map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|e| wasmtime::format_err!("cannot link the plugin host's imports: {e}"))
}
