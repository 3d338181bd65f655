//! What a plugin's instance lives in: a store with nothing granted, its
//! resource limiter, and the host side of the `host` interface.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::specgate::policy::host::{self, Level};
use super::bindings::specgate::policy::types;
use super::limits::{LOG_CALL_COST, Limits};

/// A limit a plugin went past, recorded by the host so that the trap it
/// causes can be reported by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    /// Linear memory.
    Memory,
    /// Table elements or instance, table and memory counts.
    Resources,
    /// Log messages, stdout or stderr.
    Output,
}

/// The store data of one plugin instance.
pub struct PluginState {
    plugin: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    count_limit: usize,
    memory_limit: usize,
    /// Bytes of linear memory over all the instance's memories: the limit
    /// is on this sum, so that a component of many memories gets no more
    /// than one of a single memory.
    memory_total: usize,
    table_limit: usize,
    output_limit: usize,
    logged: usize,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    forwarded: [usize; 2],
    breach: Option<Breach>,
}

impl std::fmt::Debug for PluginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginState")
            .field("plugin", &self.plugin)
            .field("breach", &self.breach)
            .finish_non_exhaustive()
    }
}

impl PluginState {
    /// A fresh state: WASI with no files, no environment, no arguments, no
    /// network and no inherited stdio; output captured up to the limit.
    pub fn new(plugin: Arc<str>, limits: &Limits) -> Self {
        let stdout = MemoryOutputPipe::new(limits.output);
        let stderr = MemoryOutputPipe::new(limits.output);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        PluginState {
            plugin,
            wasi,
            table: ResourceTable::new(),
            count_limit: limits.instances,
            memory_limit: limits.memory,
            memory_total: 0,
            table_limit: limits.table_elements,
            output_limit: limits.output,
            logged: 0,
            stdout,
            stderr,
            forwarded: [0, 0],
            breach: None,
        }
    }

    /// The limit the plugin went past, if any.
    pub fn breach(&self) -> Option<Breach> {
        self.breach
    }

    /// Sends what the plugin printed since the last call to the log, and
    /// returns the message of a Rust panic it printed, if any.
    pub fn forward_output(&mut self) -> Option<String> {
        let mut panic = None;
        for (i, pipe) in [&self.stdout, &self.stderr].into_iter().enumerate() {
            let contents = pipe.contents();
            let new = &contents[self.forwarded[i].min(contents.len())..];
            if new.is_empty() {
                continue;
            }
            self.forwarded[i] = contents.len();
            if contents.len() >= self.output_limit {
                self.breach = Some(Breach::Output);
            }
            let stream = if i == 0 { "stdout" } else { "stderr" };
            let text = String::from_utf8_lossy(new);
            for line in text.lines() {
                let line = super::error::escape(line);
                tracing::info!(target: "specgate::plugin", plugin = %self.plugin, stream, "{line}");
            }
            if i == 1 {
                panic = panic_message(&text).or(panic);
            }
        }
        panic
    }
}

/// The message of the last Rust panic in a plugin's stderr: the lines
/// after "panicked at FILE:LINE:COL:", up to the backtrace note.
fn panic_message(stderr: &str) -> Option<String> {
    let (_, after) = stderr.rsplit_once(" panicked at ")?;
    let message: Vec<&str> = after
        .lines()
        .skip(1)
        .take_while(|line| !line.starts_with("note: "))
        .collect();
    Some(message.join(" ").trim().to_string()).filter(|m| !m.is_empty())
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for PluginState {
    /// Called for every memory's creation (from 0) and growth: the
    /// growth is added to the instance's total, which must stay within
    /// the limit. Memories are never freed before the store; a growth
    /// allowed here that then fails for want of address space stays
    /// counted, which errs on the strict side.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .memory_total
            .saturating_add(desired.saturating_sub(current));
        if total > self.memory_limit {
            self.breach = Some(Breach::Memory);
            wasmtime::bail!("memory limit exceeded");
        }
        self.memory_total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_limit {
            self.breach = Some(Breach::Resources);
            wasmtime::bail!("table element limit exceeded");
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.count_limit
    }

    fn tables(&self) -> usize {
        self.count_limit
    }

    fn memories(&self) -> usize {
        self.count_limit
    }
}

impl types::Host for PluginState {}

impl host::Host for PluginState {
    /// Each call costs at least [`LOG_CALL_COST`] bytes of the output
    /// bound, so that a flood of empty messages is stopped as one of long
    /// ones is. A message's control characters are escaped: a plugin
    /// cannot forge or erase lines of the log.
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.logged = self.logged.saturating_add(message.len().max(LOG_CALL_COST));
        if self.logged > self.output_limit {
            self.breach = Some(Breach::Output);
            wasmtime::bail!("log output limit exceeded");
        }
        let message = super::error::escape(&message);
        let plugin = &*self.plugin;
        match level {
            Level::Trace => tracing::trace!(target: "specgate::plugin", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "specgate::plugin", plugin, "{message}"),
            Level::Info => tracing::info!(target: "specgate::plugin", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "specgate::plugin", plugin, "{message}"),
            Level::Error => tracing::error!(target: "specgate::plugin", plugin, "{message}"),
        }
        Ok(())
    }

    fn log_enabled(&mut self, level: Level) -> wasmtime::Result<bool> {
        Ok(match level {
            Level::Trace => tracing::enabled!(target: "specgate::plugin", tracing::Level::TRACE),
            Level::Debug => tracing::enabled!(target: "specgate::plugin", tracing::Level::DEBUG),
            Level::Info => tracing::enabled!(target: "specgate::plugin", tracing::Level::INFO),
            Level::Warn => tracing::enabled!(target: "specgate::plugin", tracing::Level::WARN),
            Level::Error => tracing::enabled!(target: "specgate::plugin", tracing::Level::ERROR),
        })
    }
}

/// A fresh store for one plugin instance, with its limiter installed.
pub fn new_store(
    engine: &wasmtime::Engine,
    plugin: Arc<str>,
    limits: &Limits,
) -> Store<PluginState> {
    let mut store = Store::new(engine, PluginState::new(plugin, limits));
    store.limiter(|state| state);
    store.epoch_deadline_trap();
    store
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_found_in_stderr() {
        let stderr = "starting\nthread '<unnamed>' panicked at src/lib.rs:88:24:\n\
                      hostile plugin panics on purpose\n\
                      note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("hostile plugin panics on purpose")
        );
        assert_eq!(panic_message("just output\n"), None);
    }
}
