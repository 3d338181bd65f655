//! Running the plugin chain over a spec: every plugin instantiated in a
//! fresh store and configured, then each adjusting hook in chain order,
//! then every validator on the final container.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use oci_spec::runtime::Spec;
use wasmtime::Store;
use wasmtime::component::Instance as WasmInstance;

use super::bindings::plugin::Info;
use super::bindings::types::Container;
use super::bindings::{capabilities, mounts, namespaces, plugin, validate};
use super::change::{self, Checked, Effect, Field, Grant, Rejected};
use super::error::{PluginError, Problem, Stage, escape};
use super::file::{Mode, OnError};
use super::grants::{Grants, PinnedSource};
use super::limits::{Limits, bytes};
use super::plugin::{Hook, Plugin};
use super::sandbox::{Breach, PluginState, new_store};
use super::view::{self, Weight};

/// One plugin in a chain, with what the operator gave it.
#[derive(Debug)]
pub struct Entry<'p> {
    /// The loaded plugin.
    pub plugin: &'p Plugin,
    /// Its settings, passed to `configure`.
    pub settings: Vec<(String, String)>,
    /// What it may do beyond restricting.
    pub grants: Grants,
    /// The limits it runs under.
    pub limits: Limits,
    /// Whether its failure fails the run or skips it.
    pub on_error: OnError,
}

/// A change a plugin made, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The plugin's name.
    pub plugin: String,
    /// The hook that returned it.
    pub hook: Hook,
    /// The change as a person would write it.
    pub change: String,
    /// The grant that allowed it: present exactly for widening changes,
    /// which apply only when granted.
    pub grant: Option<String>,
}

impl Applied {
    /// `restricting` or `widening`, as audit records and traces say it.
    pub fn effect(&self) -> &'static str {
        if self.grant.is_some() {
            "widening"
        } else {
            "restricting"
        }
    }
}

/// What the chain did.
#[derive(Debug, Default)]
pub struct Report {
    /// Every change applied, in order.
    pub applied: Vec<Applied>,
    /// Time spent in each plugin's calls.
    pub timings: Vec<(String, Stage, Duration)>,
    /// Plugins that failed with `on-error = "skip"`, and how.
    pub skipped: Vec<PluginError>,
    /// In monitor mode: every denial, refused change and failure that
    /// enforcing would have stopped the run for.
    pub would_deny: Vec<PluginError>,
    /// The granted bind sources of the changes applied, each opened when
    /// its change was checked: the runtime must mount these objects, not
    /// the paths again (`runtime::pin`).
    pub pins: Vec<PinnedSource>,
    mode: Mode,
    /// The plugins' instances, freed with the report: a process that is
    /// about to exec or exit can forget the report instead, and skip
    /// unmapping their memories and stacks.
    instances: Vec<Store<PluginState>>,
}

/// A plugin's live instance for one run.
struct Running<'e, 'p> {
    entry: &'e Entry<'p>,
    store: Store<PluginState>,
    guests: Guests,
}

struct Guests {
    plugin: plugin::Guest,
    namespaces: Option<namespaces::Guest>,
    capabilities: Option<capabilities::Guest>,
    mounts: Option<mounts::Guest>,
    validate: Option<validate::Guest>,
}

type Outcome<R> = Result<wasmtime::Result<R>, tokio::time::error::Elapsed>;

impl<'e, 'p> Running<'e, 'p> {
    async fn start(engine: &wasmtime::Engine, entry: &'e Entry<'p>) -> Result<Self, PluginError> {
        let plugin = entry.plugin;
        let mut store = new_store(engine, plugin.shared_name(), &entry.limits);
        store.set_epoch_deadline(entry.limits.deadline_ticks());
        let instance: WasmInstance = match tokio::time::timeout(
            entry.limits.call_timeout,
            plugin.pre.instantiate_async(&mut store),
        )
        .await
        {
            Ok(Ok(instance)) => instance,
            Ok(Err(error)) => {
                return Err(Failure::Error(error).describe(&mut store, entry, Stage::Instantiate));
            }
            Err(_elapsed) => {
                return Err(Failure::Elapsed.describe(&mut store, entry, Stage::Instantiate));
            }
        };
        let load = |e: wasmtime::Error| {
            plugin.error(Stage::Instantiate, Problem::Invalid(format!("{e:#}")))
        };
        let indices = &plugin.indices;
        let guests = Guests {
            plugin: indices.plugin.load(&mut store, &instance).map_err(load)?,
            namespaces: indices
                .namespaces
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(load)?,
            capabilities: indices
                .capabilities
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(load)?,
            mounts: indices
                .mounts
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(load)?,
            validate: indices
                .validate
                .as_ref()
                .map(|i| i.load(&mut store, &instance))
                .transpose()
                .map_err(load)?,
        };
        Ok(Running {
            entry,
            store,
            guests,
        })
    }

    /// Gives the next call a fresh deadline.
    fn arm(&mut self) {
        self.store
            .set_epoch_deadline(self.entry.limits.deadline_ticks());
    }

    /// Turns a call's outcome into a result, forwarding its output and
    /// naming any limit it broke.
    fn settle<R>(&mut self, stage: Stage, outcome: Outcome<R>) -> Result<R, PluginError> {
        let failure = match outcome {
            Ok(Ok(value)) => {
                self.store.data_mut().forward_output();
                if self.store.data().breach().is_none() {
                    return Ok(value);
                }
                Failure::Breach
            }
            Ok(Err(error)) => Failure::Error(error),
            Err(_elapsed) => Failure::Elapsed,
        };
        Err(failure.describe(&mut self.store, self.entry, stage))
    }

    async fn describe(&mut self) -> Result<Info, PluginError> {
        self.arm();
        let timeout = self.entry.limits.call_timeout;
        let guest = &self.guests.plugin;
        let outcome = tokio::time::timeout(timeout, guest.call_describe(&mut self.store)).await;
        self.settle(Stage::Describe, outcome)
    }

    async fn configure(&mut self) -> Result<(), PluginError> {
        self.arm();
        let timeout = self.entry.limits.call_timeout;
        let guest = &self.guests.plugin;
        let settings = &self.entry.settings;
        let outcome =
            tokio::time::timeout(timeout, guest.call_configure(&mut self.store, settings)).await;
        self.settle(Stage::Configure, outcome)?.map_err(|message| {
            self.entry
                .plugin
                .error(Stage::Configure, Problem::Settings(message))
        })
    }

    /// Calls one adjusting hook and checks each change it returns against
    /// the spec as it stands.
    async fn adjust(
        &mut self,
        hook: Hook,
        spec: &Spec,
        id: &str,
    ) -> Result<Vec<Checked>, PluginError> {
        let container: Container = view::container(spec, id);
        let timeout = self.entry.limits.call_timeout;
        let stage = hook.stage();
        let denied =
            |this: &Self, reason: String| this.entry.plugin.error(stage, Problem::Denied(reason));
        self.arm();
        // The three hooks differ only in their guest and their change type.
        macro_rules! adjust {
            ($this:expr, $guest:ident, $check:expr) => {{
                let Some(guest) = &$this.guests.$guest else {
                    return Ok(vec![]);
                };
                let outcome =
                    tokio::time::timeout(timeout, guest.call_adjust(&mut $this.store, &container))
                        .await;
                let changes = $this
                    .settle(stage, outcome)?
                    .map_err(|d| denied($this, d.reason))?;
                $this.check_count(stage, changes.len())?;
                $this.check_bytes(stage, changes.weight())?;
                changes.iter().map($check).collect()
            }};
        }
        let results: Vec<Result<Checked, Rejected>> = match hook {
            Hook::Namespaces => adjust!(self, namespaces, |c| change::check_namespace(spec, c)),
            Hook::Capabilities => adjust!(self, capabilities, change::check_capability),
            Hook::Mounts => adjust!(self, mounts, |c| change::check_mount(spec, c)),
            Hook::Validate => return Ok(vec![]),
        };
        results
            .into_iter()
            .enumerate()
            .map(|(index, result)| {
                result.map_err(|r| {
                    self.entry.plugin.error(
                        stage,
                        Problem::Change {
                            index,
                            change: r.description,
                            reason: r.reason,
                        },
                    )
                })
            })
            .collect()
    }

    async fn validate(&mut self, container: &Container) -> Result<(), PluginError> {
        self.arm();
        let Some(guest) = &self.guests.validate else {
            return Ok(());
        };
        let timeout = self.entry.limits.call_timeout;
        let outcome =
            tokio::time::timeout(timeout, guest.call_check(&mut self.store, container)).await;
        self.settle(Stage::Validate, outcome)?.map_err(|d| {
            self.entry
                .plugin
                .error(Stage::Validate, Problem::Denied(d.reason))
        })
    }

    fn check_bytes(&self, stage: Stage, bytes: usize) -> Result<(), PluginError> {
        let limit = self.entry.limits.changes_bytes;
        if bytes > limit {
            return Err(self
                .entry
                .plugin
                .error(stage, Problem::ChangesTooLarge { bytes, limit }));
        }
        Ok(())
    }

    fn check_count(&self, stage: Stage, count: usize) -> Result<(), PluginError> {
        let limit = self.entry.limits.changes_per_hook;
        if count > limit {
            return Err(self
                .entry
                .plugin
                .error(stage, Problem::TooManyChanges { count, limit }));
        }
        Ok(())
    }
}

/// How a call failed, before it is named.
enum Failure {
    /// The call's timer ran out while the plugin waited in a host call.
    Elapsed,
    /// The call trapped or returned a host error.
    Error(wasmtime::Error),
    /// The call returned, but past a limit (its output was cut).
    Breach,
}

impl Failure {
    /// Names what went wrong: a broken limit if the store recorded one,
    /// else the trap or the error.
    fn describe(
        self,
        store: &mut Store<PluginState>,
        entry: &Entry<'_>,
        stage: Stage,
    ) -> PluginError {
        let panic = store.data_mut().forward_output();
        let limits = &entry.limits;
        let problem = match (store.data().breach(), self) {
            (Some(Breach::Memory), _) => Problem::Memory(bytes(limits.memory)),
            (Some(Breach::Resources), _) => Problem::Resources,
            (Some(Breach::Output), _) | (None, Failure::Breach) => {
                Problem::Output(bytes(limits.output))
            }
            (None, Failure::Elapsed) => Problem::Timeout(limits.call_timeout),
            (None, Failure::Error(error)) => match error.downcast_ref::<wasmtime::Trap>() {
                Some(wasmtime::Trap::Interrupt) => Problem::Timeout(limits.call_timeout),
                Some(wasmtime::Trap::StackOverflow) => Problem::StackOverflow,
                Some(wasmtime::Trap::UnreachableCodeReached) => {
                    Problem::Panic(panic.unwrap_or_else(|| "wasm `unreachable` executed".into()))
                }
                Some(trap) => Problem::Trap(trap.to_string()),
                None => Problem::Host(format!("{error:#}")),
            },
        };
        entry.plugin.error(stage, problem)
    }
}

/// Runs the chain over `spec` for the container `id`, changing it in
/// place. On error the spec may be partly changed and must be discarded.
pub(super) async fn run(
    engine: &wasmtime::Engine,
    entries: &[Entry<'_>],
    spec: &mut Spec,
    id: &str,
    mode: Mode,
) -> Result<Report, PluginError> {
    let mut report = Report {
        mode,
        ..Report::default()
    };
    run_into(engine, entries, spec, id, &mut report).await?;
    Ok(report)
}

/// Runs the chain as [`run`] does, into a report the caller keeps: when
/// the chain refuses, it still says what the plugins did before.
pub(super) async fn run_into(
    engine: &wasmtime::Engine,
    entries: &[Entry<'_>],
    spec: &mut Spec,
    id: &str,
    report: &mut Report,
) -> Result<(), PluginError> {
    let mode = report.mode;
    // The container as the user made it must fit what plugins are given.
    if let Some(first) = entries.first() {
        let bytes = view::container(spec, id).weight();
        let limit = first.limits.view_bytes;
        if bytes > limit {
            let stage = first
                .plugin
                .hooks()
                .first()
                .map_or(Stage::Configure, |h| h.stage());
            return Err(first
                .plugin
                .error(stage, Problem::ContainerTooLarge { bytes, limit }));
        }
    }
    let mut running = Vec::with_capacity(entries.len());
    for entry in entries {
        let started = Instant::now();
        let configured = async {
            let mut instance = Running::start(engine, entry).await?;
            instance.configure().await?;
            Ok(instance)
        };
        match configured.await {
            Ok(instance) => running.push(instance),
            // A validator that cannot even be configured has no word to
            // give: `on-error = "skip"` does not apply to it.
            Err(error) if entry.plugin.has_hook(Hook::Validate) => {
                report.refuse(final_word(entry, error))?
            }
            Err(error) => report.fail(entry, error)?,
        }
        report.timings.push((
            entry.plugin.name().to_string(),
            Stage::Configure,
            started.elapsed(),
        ));
    }

    let mut owners: HashMap<Field, String> = HashMap::new();
    let mut failed = vec![false; running.len()];
    for (instance, failed) in running.iter_mut().zip(&mut failed) {
        // A plugin that fails where failing does not stop the run (skip,
        // monitor) leaves no trace: the spec, the owners and the report go
        // back to before it. Only then is the snapshot worth taking.
        let survivable = instance.entry.on_error == OnError::Skip || mode == Mode::Monitor;
        let before = survivable.then(|| {
            let counts = (report.applied.len(), report.pins.len());
            (spec.clone(), owners.clone(), counts)
        });
        if let Err(error) = adjust_all(instance, spec, id, &mut owners, report).await {
            report.fail(instance.entry, error)?;
            if let Some((spec_before, owners_before, (applied, pins))) = before {
                (*spec, owners) = (spec_before, owners_before);
                report.applied.truncate(applied);
                report.pins.truncate(pins);
            }
            *failed = true;
        }
    }

    // Validators cannot change the spec: they all see one view of it,
    // built only when one runs. A validator's word is final: its failure
    // of any kind stops the run whatever its `on-error`, and one whose
    // changes were skipped still judges the container, from a fresh
    // instance (the failed one may be unusable).
    let mut container = None;
    for (instance, failed) in running.iter_mut().zip(failed) {
        if !instance.entry.plugin.has_hook(Hook::Validate) {
            continue;
        }
        let container = container.get_or_insert_with(|| view::container(spec, id));
        let started = Instant::now();
        let verdict = if failed {
            async {
                let mut fresh = Running::start(engine, instance.entry).await?;
                fresh.configure().await?;
                fresh.validate(container).await
            }
            .await
        } else {
            instance.validate(container).await
        };
        if let Err(error) = verdict {
            report.refuse(final_word(instance.entry, error))?;
        }
        report.timings.push((
            instance.entry.plugin.name().to_string(),
            Stage::Validate,
            started.elapsed(),
        ));
    }
    report.instances = running.into_iter().map(|r| r.store).collect();
    Ok(())
}

/// A validator's failure, which stops the run whatever its `on-error`:
/// when that says `skip`, the error says why it did not apply.
fn final_word(entry: &Entry<'_>, mut error: PluginError) -> PluginError {
    if entry.on_error == OnError::Skip && !error.is_denial() {
        error.problem = Problem::Validator(Box::new(error.problem));
    }
    error
}

impl Report {
    /// An empty report of a chain run in `mode`.
    pub fn new(mode: Mode) -> Self {
        Report {
            mode,
            ..Report::default()
        }
    }

    /// A refused change or a hook's denial: noted in monitor mode, else
    /// returned to stop the run.
    fn refuse(&mut self, error: PluginError) -> Result<(), PluginError> {
        if self.mode != Mode::Monitor {
            return Err(error);
        }
        tracing::warn!("would deny (monitor mode): {error}");
        self.would_deny.push(error);
        Ok(())
    }

    /// Decides what a plugin's denial or failure does: in monitor mode it
    /// is recorded as "would deny" and the chain goes on; otherwise a
    /// failure under `on-error = "skip"` is recorded and skipped, and
    /// anything else is returned to stop the run.
    fn fail(&mut self, entry: &Entry<'_>, error: PluginError) -> Result<(), PluginError> {
        if self.mode == Mode::Monitor || error.is_denial() || entry.on_error == OnError::Deny {
            return self.refuse(error);
        }
        tracing::warn!("skipping the plugin (on-error = \"skip\"): {error}");
        self.skipped.push(error);
        Ok(())
    }
}

/// Calls a plugin's adjusting hooks in order, checking and applying each
/// change.
async fn adjust_all(
    instance: &mut Running<'_, '_>,
    spec: &mut Spec,
    id: &str,
    owners: &mut HashMap<Field, String>,
    report: &mut Report,
) -> Result<(), PluginError> {
    let plugin = instance.entry.plugin;
    for hook in [Hook::Namespaces, Hook::Capabilities, Hook::Mounts] {
        if !plugin.has_hook(hook) {
            continue;
        }
        let started = Instant::now();
        let changes = match instance.adjust(hook, spec, id).await {
            // In monitor mode a hook's denial is noted and the chain goes
            // on with the plugin's next hook.
            Err(denial) if denial.is_denial() && report.mode == Mode::Monitor => {
                report.refuse(denial)?;
                continue;
            }
            other => other?,
        };
        let mut changed = false;
        for (index, checked) in changes.into_iter().enumerate() {
            // Judged where it applies: after the changes before it.
            let checked = checked.recheck(spec).map_err(|r| {
                plugin.error(
                    hook.stage(),
                    Problem::Change {
                        index,
                        change: r.description,
                        reason: r.reason,
                    },
                )
            })?;
            let refuse = |reason: String| {
                plugin.error(
                    hook.stage(),
                    Problem::Change {
                        index,
                        change: checked.description.clone(),
                        reason,
                    },
                )
            };
            let grant = match checked.effect.missing(|g| instance.entry.grants.allow(g)) {
                None => checked.effect.grants().map(|g| escape(&g).into_owned()),
                Some(grant) => {
                    report.refuse(refuse(format!(
                        "widens the container and is not granted; the operator can allow it \
                         with `{grant}` in this plugin's grants"
                    )))?;
                    continue;
                }
            };
            // A granted bind source is opened now, once: what the runtime
            // mounts is the object checked here, whatever the path does
            // afterwards.
            let source = match &checked.effect {
                Effect::Widening(needs) => needs.iter().find_map(|g| match g {
                    Grant::BindSource(source) => Some(source),
                    _ => None,
                }),
                Effect::Restricting => None,
            };
            let pinned = match source.map(|source| instance.entry.grants.pin_bind(source)) {
                Some(Ok(pinned)) => Some(pinned),
                Some(Err(reason)) => {
                    report.refuse(refuse(reason))?;
                    continue;
                }
                None => None,
            };
            let taken = checked.fields.iter().find_map(|field| {
                owners
                    .get(field)
                    .filter(|owner| *owner != plugin.name())
                    .map(|owner| (field, owner))
            });
            if let Some((field, owner)) = taken {
                report.refuse(refuse(format!(
                    "conflicts with plugin {owner}, which already changed {field}"
                )))?;
                continue;
            }
            for field in &checked.fields {
                owners
                    .entry(field.clone())
                    .or_insert_with(|| plugin.name().to_string());
            }
            report.applied.push(Applied {
                plugin: plugin.name().to_string(),
                hook,
                // Paths and options are the plugin's text: whoever reads
                // the trace or the audit log sees them escaped.
                change: escape(&checked.description).into_owned(),
                grant,
            });
            report.pins.extend(pinned);
            checked.apply(spec);
            changed = true;
        }
        // Every later plugin must be able to read what this one leaves.
        if changed {
            let bytes = view::container(spec, id).weight();
            let limit = instance.entry.limits.view_bytes;
            if bytes > limit {
                return Err(plugin.error(hook.stage(), Problem::ViewTooLarge { bytes, limit }));
            }
        }
        report
            .timings
            .push((plugin.name().to_string(), hook.stage(), started.elapsed()));
    }
    Ok(())
}

/// Instantiates a plugin and asks it to describe itself.
pub(super) async fn describe(
    engine: &wasmtime::Engine,
    plugin: &Plugin,
    limits: &Limits,
) -> Result<Info, PluginError> {
    let entry = Entry {
        plugin,
        settings: vec![],
        grants: Grants::default(),
        limits: limits.clone(),
        on_error: OnError::Deny,
    };
    let mut instance = Running::start(engine, &entry).await?;
    instance.describe().await
}
