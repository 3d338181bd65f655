//! The one wasmtime engine of a process, and the linker that gives plugins
//! the contract's imports and a WASI with nothing granted.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::Thread;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

use super::bindings::Policy;
use super::limits::EPOCH_TICK;
use super::sandbox::PluginState;

/// How many [`Ticking`]s are held: the ticker advances the epoch only
/// while some are.
static TICKING: AtomicUsize = AtomicUsize::new(0);

/// The ticker thread, woken when the first [`Ticking`] is taken.
static TICKER: OnceLock<Thread> = OnceLock::new();

/// The process's engine: epoch interruption on, its epoch advanced by a
/// ticker thread that lives as long as the process and sleeps while no
/// [`Ticking`] is held.
pub fn engine() -> wasmtime::Result<&'static Engine> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = Config::new();
            config.epoch_interruption(true);
            config.wasm_component_model(true);
            let engine = Engine::new(&config).map_err(|e| e.to_string())?;
            let ticker = engine.clone();
            let thread = std::thread::Builder::new()
                .name("specgate-epoch".into())
                .spawn(move || {
                    loop {
                        // A spurious or stale wake-up only loops again.
                        if TICKING.load(Ordering::Acquire) == 0 {
                            std::thread::park();
                            continue;
                        }
                        std::thread::sleep(EPOCH_TICK);
                        ticker.increment_epoch();
                    }
                })
                .map_err(|e| format!("cannot start the epoch thread: {e}"))?;
            let _ = TICKER.set(thread.thread().clone());
            Ok(engine)
        })
        .as_ref()
        .map_err(|e| wasmtime::format_err!("cannot create the wasm engine: {e}"))
}

/// Keeps the engine's epoch advancing while held, so that plugin calls
/// meet their deadlines. Held only while plugins run: a `specgate run`
/// stays up as long as its container, and a ticker that never slept would
/// wake it every [`EPOCH_TICK`] all that time.
#[derive(Debug)]
pub struct Ticking(());

impl Ticking {
    /// Takes a hold, waking the ticker if it slept.
    pub fn start() -> Self {
        if TICKING.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(ticker) = TICKER.get()
        {
            ticker.unpark();
        }
        Ticking(())
    }
}

impl Drop for Ticking {
    fn drop(&mut self) {
        TICKING.fetch_sub(1, Ordering::AcqRel);
    }
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
