//! The one wasmtime engine of a process, and the linker that gives plugins
//! the contract's imports and a WASI with nothing granted.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::Thread;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};
use wasmtime_wasi::WasiView;

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

/// The linker a plugin is instantiated with: the `host` interface, and
/// WASI p2 backed by a context that grants nothing (see `sandbox.rs`).
///
/// A plugin that imports nothing of WASI beyond `wasi:cli` and `wasi:io`,
/// as a Rust plugin of the SDK does, gets a linker of just those: about
/// 40 functions, against well over a hundred in all of WASI p2, whose
/// types and names are registered one by one at a cost that shows in a
/// short run's time. Any other plugin gets all of WASI p2. Both deny the
/// same, through the same context: the smaller one only lacks what the
/// plugin never calls. Each is built once per process, on first use.
pub fn linker(imports: &[String]) -> wasmtime::Result<&'static Linker<PluginState>> {
    const BASIC: [&str; 3] = ["specgate:policy/", "wasi:cli/", "wasi:io/"];
    if imports
        .iter()
        .all(|import| BASIC.iter().any(|prefix| import.starts_with(prefix)))
    {
        basic_linker()
    } else {
        full_linker()
    }
}

/// The linker of plugins that import only the contract, `wasi:cli` and
/// `wasi:io`. Loading builds it while plugin files are read and mapped
/// on other threads.
pub fn basic_linker() -> wasmtime::Result<&'static Linker<PluginState>> {
    use wasmtime::component::{HasData, ResourceTable};
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::p2::bindings::{cli, io};

    /// `wasi:io`'s host side is the instance's resource table.
    struct Io;
    impl HasData for Io {
        type Data<'a> = &'a mut ResourceTable;
    }
    fn table(state: &mut PluginState) -> &mut ResourceTable {
        state.ctx().table
    }

    let cli_of = PluginState::cli;

    static LINKER: OnceLock<Result<Linker<PluginState>, String>> = OnceLock::new();
    built(&LINKER, |linker| {
        io::error::add_to_linker::<_, Io>(linker, table)?;
        io::poll::add_to_linker::<_, Io>(linker, table)?;
        io::streams::add_to_linker::<_, Io>(linker, table)?;
        cli::exit::add_to_linker::<_, WasiCli>(linker, cli_of)?;
        cli::environment::add_to_linker::<_, WasiCli>(linker, cli_of)?;
        cli::stdin::add_to_linker::<_, WasiCli>(linker, cli_of)?;
        cli::stdout::add_to_linker::<_, WasiCli>(linker, cli_of)?;
        cli::stderr::add_to_linker::<_, WasiCli>(linker, cli_of)?;
        cli::terminal_input::add_to_linker::<_, WasiCli>(linker, cli_of)?;
        cli::terminal_output::add_to_linker::<_, WasiCli>(linker, cli_of)?;
        cli::terminal_stdin::add_to_linker::<_, WasiCli>(linker, cli_of)?;
        cli::terminal_stdout::add_to_linker::<_, WasiCli>(linker, cli_of)?;
        cli::terminal_stderr::add_to_linker::<_, WasiCli>(linker, cli_of)?;
        Ok(())
    })
}

/// The linker of every other plugin: all of WASI p2.
fn full_linker() -> wasmtime::Result<&'static Linker<PluginState>> {
    static LINKER: OnceLock<Result<Linker<PluginState>, String>> = OnceLock::new();
    built(&LINKER, |linker| {
        wasmtime_wasi::p2::add_to_linker_async(linker)?;
        Ok(())
    })
}

/// A linker with the contract's imports and what `add` defines, built
/// once in `cell`.
fn built(
    cell: &'static OnceLock<Result<Linker<PluginState>, String>>,
    add: impl FnOnce(&mut Linker<PluginState>) -> wasmtime::Result<()>,
) -> wasmtime::Result<&'static Linker<PluginState>> {
    cell.get_or_init(|| {
        let build = || -> wasmtime::Result<Linker<PluginState>> {
            let mut linker = Linker::new(engine()?);
            add(&mut linker)?;
            Policy::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
            Ok(linker)
        };
        build().map_err(|e| format!("{e:#}"))
    })
    .as_ref()
    .map_err(|e| wasmtime::format_err!("cannot link the plugin host's imports: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_importing_more_than_cli_and_io_get_all_of_wasi() {
        let imports = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let basic = basic_linker().unwrap();
        let sdk = imports(&[
            "specgate:policy/types@0.1.0",
            "wasi:cli/stdout@0.2.6",
            "wasi:io/streams@0.2.6",
        ]);
        assert!(std::ptr::eq(linker(&sdk).unwrap(), basic));
        let clocks = imports(&["wasi:cli/stdout@0.2.6", "wasi:clocks/monotonic-clock@0.2.6"]);
        let full = linker(&clocks).unwrap();
        assert!(!std::ptr::eq(full, basic));
        assert!(std::ptr::eq(
            linker(&imports(&["wasi:sockets/tcp@0.2.0"])).unwrap(),
            full
        ));
    }
}
