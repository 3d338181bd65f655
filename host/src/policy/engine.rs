//! The one wasmtime engine of a process, how it allocates instances, the
//! compiler that fills the cache for it, and the linker that gives
//! plugins the contract's imports and a WASI with nothing granted.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::Thread;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi::WasiView;

use super::bindings::Policy;
use super::limits::{EPOCH_TICK, Limits};
use super::sandbox::PluginState;

/// How many [`Ticking`]s are held: the ticker advances the epoch only
/// while some are.
static TICKING: AtomicUsize = AtomicUsize::new(0);

/// The ticker thread, woken when the first [`Ticking`] is taken.
static TICKER: OnceLock<Thread> = OnceLock::new();

/// How a process's plugin instances get their memories, tables and
/// stacks. The first host of a process chooses, for the whole process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// Mapped for each instance and unmapped with it. Nothing is set up
    /// beforehand, which suits a process that instantiates each plugin
    /// once, as every command of the CLI does: setting up a pool costs
    /// such a process more than the pool would save it.
    OnDemand,
    /// Taken from a pool reserved when the engine is built, and reset for
    /// the next instance rather than unmapped: the pages an instance
    /// touched stay mapped, so the next instance of the same plugin finds
    /// its memory ready. For a process that runs chains again and again.
    /// The pool holds [`POOLED_PLUGINS`] plugin instances at once; one
    /// more fails to instantiate with a message naming the pool's limit.
    Pooled,
}

/// How many plugin instances a pool holds at once, over every chain of
/// the process: a running chain holds one per plugin.
pub const POOLED_PLUGINS: u32 = 32;

/// Core instances, memories and tables per plugin instance that a pool
/// holds on average. A Rust plugin has 3 core instances, a Python one
/// 14; any one plugin may use up to its own limit
/// ([`Limits::instances`]), drawn from what the others leave.
const POOLED_SHARE: u32 = 16;

static ENGINE: OnceLock<Result<(Engine, Allocation), String>> = OnceLock::new();

/// The process's engine, and how it allocates: epoch interruption on,
/// its epoch advanced by a ticker thread that lives as long as the
/// process and sleeps while no [`Ticking`] is held. The first call builds
/// it, asking for `allocation`; later calls get that engine whatever they
/// ask.
pub fn engine(allocation: Allocation) -> wasmtime::Result<(&'static Engine, Allocation)> {
    ENGINE
        .get_or_init(|| {
            let (engine, allocation) = build(allocation).map_err(|e| format!("{e:#}"))?;
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
            Ok((engine, allocation))
        })
        .as_ref()
        .map(|(engine, allocation)| (engine, *allocation))
        .map_err(|e| wasmtime::format_err!("cannot create the wasm engine: {e}"))
}

/// An engine allocating as asked, and how it does. A pool that cannot
/// be reserved (an address-space limit, a small virtual address space)
/// leaves the engine allocating on demand: slower to instantiate again,
/// never wrong.
///
/// The engine only loads precompiled plugins: setting Cranelift up for
/// the host is a good part of building an engine, on the way to a
/// wrapper's first load, and most processes find every plugin in the
/// cache. A miss is compiled by [`compiler`].
fn build(allocation: Allocation) -> wasmtime::Result<(Engine, Allocation)> {
    let mut config = settings();
    config.enable_compiler(false);
    if allocation == Allocation::Pooled {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool()));
        match Engine::new(&config) {
            Ok(engine) => return Ok((engine, Allocation::Pooled)),
            Err(e) => {
                tracing::debug!("no instance pool ({e:#}); instances are mapped on demand");
                config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            }
        }
    }
    Ok((Engine::new(&config)?, Allocation::OnDemand))
}

/// What the process's engine and its compiler share: what compiled code
/// depends on, so that the one loads what the other compiles.
fn settings() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    config
}

static COMPILER: OnceLock<Result<Engine, String>> = OnceLock::new();

/// The engine that compiles plugins for the process's engine: the same
/// settings, with Cranelift. Built on the first plugin not in the cache;
/// it never instantiates anything.
pub fn compiler() -> wasmtime::Result<&'static Engine> {
    COMPILER
        .get_or_init(|| Engine::new(&settings()).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| wasmtime::format_err!("cannot create the wasm compiler: {e}"))
}

/// The pool of [`Allocation::Pooled`]. Its limits per plugin are the
/// defaults of [`Limits`], which no policy raises, so that a plugin
/// within its limits never meets the pool's; a memory slot spans all a
/// 32-bit memory can grow to, the limiter stopping each plugin at its own
/// memory limit.
fn pool() -> PoolingAllocationConfig {
    let most = Limits::default();
    let per_plugin = u32::try_from(most.instances).unwrap_or(u32::MAX);
    let shared = POOLED_PLUGINS * POOLED_SHARE;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOLED_PLUGINS)
        .total_stacks(POOLED_PLUGINS)
        .total_core_instances(shared)
        .total_memories(shared)
        .total_tables(shared)
        .max_core_instances_per_component(per_plugin)
        .max_memories_per_component(per_plugin)
        .max_tables_per_component(per_plugin)
        .max_memories_per_module(per_plugin)
        .max_tables_per_module(per_plugin)
        .table_elements(most.table_elements)
        .max_memory_size(1 << 32)
        // Instance metadata grows with a module's imports and escaping
        // functions: an interpreter's is large.
        .max_core_instance_size(8 << 20)
        .max_component_instance_size(8 << 20)
        // Reset by rewriting the pages an instance dirtied, found by
        // PAGEMAP_SCAN where the kernel has it (6.7 and later), instead
        // of unmapping them: the next instance takes no page faults
        // there. On demand, a Rust example faults five or six pages in
        // per run.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(64 << 10);
    pool
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

/// Builds the process's engine and the SDK plugins' linker (see
/// [`basic_linker`]) on another thread, for a process that is about to
/// load plugins and has other work first: the first host then finds them
/// built, or waits for the rest. A failure is the first host's to report,
/// as if it had built them itself; a thread that cannot start leaves the
/// work to it.
pub fn warm_up(allocation: Allocation) {
    let warm = move || {
        // wasmtime checks each precompiled plugin's CPU features against
        // the host's, detected once per process: here rather than in the
        // first load.
        #[cfg(target_arch = "x86_64")]
        let _ = std::arch::is_x86_feature_detected!("avx");
        if let Ok((engine, _)) = engine(allocation) {
            let _ = basic_linker(engine);
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("specgate-warm-up".into())
        .spawn(warm)
    {
        tracing::debug!("no warm-up thread ({e}): the first host builds the engine");
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
pub fn linker(
    engine: &Engine,
    imports: &[String],
) -> wasmtime::Result<&'static Linker<PluginState>> {
    const BASIC: [&str; 3] = ["specgate:policy/", "wasi:cli/", "wasi:io/"];
    if imports
        .iter()
        .all(|import| BASIC.iter().any(|prefix| import.starts_with(prefix)))
    {
        basic_linker(engine)
    } else {
        full_linker(engine)
    }
}

/// The linker of plugins that import only the contract, `wasi:cli` and
/// `wasi:io`. Loading builds it while plugin files are read and mapped
/// on other threads.
pub fn basic_linker(engine: &Engine) -> wasmtime::Result<&'static Linker<PluginState>> {
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
    built(engine, &LINKER, |linker| {
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
fn full_linker(engine: &Engine) -> wasmtime::Result<&'static Linker<PluginState>> {
    static LINKER: OnceLock<Result<Linker<PluginState>, String>> = OnceLock::new();
    built(engine, &LINKER, |linker| {
        wasmtime_wasi::p2::add_to_linker_async(linker)?;
        Ok(())
    })
}

/// A linker with the contract's imports and what `add` defines, built
/// once in `cell`, for the process's one engine.
fn built(
    engine: &Engine,
    cell: &'static OnceLock<Result<Linker<PluginState>, String>>,
    add: impl FnOnce(&mut Linker<PluginState>) -> wasmtime::Result<()>,
) -> wasmtime::Result<&'static Linker<PluginState>> {
    cell.get_or_init(|| {
        let build = || -> wasmtime::Result<Linker<PluginState>> {
            let mut linker = Linker::new(engine);
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
        let (engine, _) = engine(Allocation::Pooled).unwrap();
        let basic = basic_linker(engine).unwrap();
        let sdk = imports(&[
            "specgate:policy/types@0.1.0",
            "wasi:cli/stdout@0.2.6",
            "wasi:io/streams@0.2.6",
        ]);
        assert!(std::ptr::eq(linker(engine, &sdk).unwrap(), basic));
        let clocks = imports(&["wasi:cli/stdout@0.2.6", "wasi:clocks/monotonic-clock@0.2.6"]);
        let full = linker(engine, &clocks).unwrap();
        assert!(!std::ptr::eq(full, basic));
        assert!(std::ptr::eq(
            linker(engine, &imports(&["wasi:sockets/tcp@0.2.0"])).unwrap(),
            full
        ));
    }

    /// The process's engine compiles nothing: a plugin not in the cache is
    /// compiled by `compiler`, and the engine loads the result.
    #[test]
    fn the_engine_loads_what_the_compiler_compiles() {
        let (engine, _) = engine(Allocation::Pooled).unwrap();
        // An empty component: the magic, version 13 and layer 1.
        let empty = b"\0asm\x0d\0\x01\0";
        assert!(engine.precompile_component(empty).is_err());
        crate::sys::compile_component(compiler().unwrap(), engine, empty).unwrap();
    }
}
