//! Plugin load and call times, in-process, medians over many rounds:
//! cold load (compile), cached load, and instantiate + configure + every
//! hook, for one Rust plugin, the Python and the JavaScript example (built
//! by `.ci/setup`), side by side, and for the five Rust examples.
//!
//! Each case runs twice, each time in a process of its own: with
//! instances from a pool (`Allocation::Pooled`, for a host that runs
//! chains again and again), and mapped on demand (`Allocation::OnDemand`,
//! what the CLI uses, where each plugin is instantiated once per process).
//! The first instance in a process costs more than either figure: see
//! `bench/wrapper.py` for whole CLI runs.
//!
//! Run: `cargo bench -p specgate --bench plugins [-- NAME...]`, where a
//! NAME (`rust`, `python`, `javascript`, `5`) picks the cases whose label
//! starts with it.

use std::time::{Duration, Instant};

use specgate::policy::{
    Allocation, Entry, Grants, Limits, Mode, OnError, Plugin, PluginHost, Source,
    plugin::default_name,
};

const EXAMPLES: [&str; 5] = [
    "drop-capabilities",
    "readonly-mounts",
    "require-namespaces",
    "mount-allowlist",
    "deny-privileged",
];

fn named(names: &[&str]) -> Vec<Source> {
    names
        .iter()
        .map(|n| {
            let path = specgate_tests::plugin(n);
            Source::new(&default_name(&path), &path)
        })
        .collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn measure(rounds: usize, mut f: impl FnMut()) -> Duration {
    f();
    median(
        (0..rounds)
            .map(|_| {
                let started = Instant::now();
                f();
                started.elapsed()
            })
            .collect(),
    )
}

fn private_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    dir
}

/// Each plugin with no settings and no grants.
fn chain_of<'p>(plugins: &'p [Plugin], limits: &Limits) -> Vec<Entry<'p>> {
    plugins
        .iter()
        .map(|plugin| Entry {
            plugin,
            settings: vec![],
            grants: Grants::default(),
            limits: limits.clone(),
            on_error: OnError::Deny,
        })
        .collect()
}

/// One case under one allocation, printed as the engine has it (a pool
/// that cannot be reserved falls back to on demand). Cold loads do not
/// depend on how instances are allocated, and are measured under the
/// pool only.
fn bench(label: &str, names: &[&str], allocation: Allocation) {
    let plugins = named(names);
    let limits = Limits::default();

    let cold = (allocation == Allocation::Pooled).then(|| {
        measure(3, || {
            let cache = private_dir();
            let host =
                PluginHost::new(Some(cache.path()), limits.clone(), allocation).expect("host");
            host.load_all(&plugins).expect("load");
        })
    });

    let cache = private_dir();
    let host = PluginHost::new(Some(cache.path()), limits.clone(), allocation).expect("host");
    host.load_all(&plugins).expect("warm the cache");
    let cached = measure(200, || {
        host.load_all(&plugins).expect("load");
    });

    let loaded = host.load_all(&plugins).expect("load");
    let entries = chain_of(&loaded, &limits);
    let base = specgate::spec::default_spec("bench", &["/bin/true".into()]);
    let call = measure(1000, || {
        let mut spec = base.clone();
        host.run_chain(&entries, &mut spec, "bench", Mode::Enforce)
            .expect("chain");
    });
    let total = measure(200, || {
        let loaded = host.load_all(&plugins).expect("load");
        let entries = chain_of(&loaded, &limits);
        let mut spec = base.clone();
        host.run_chain(&entries, &mut spec, "bench", Mode::Enforce)
            .expect("chain");
    });

    let per_plugin = call / names.len() as u32;
    let cold = cold.map_or("-".to_string(), |c| format!("{:.1}", c.as_secs_f64() * 1e3));
    println!(
        "{label:<12} {:<9} cold load {cold:>7} ms | cached load {:>7.3} ms | instantiate+configure+hooks {:>7.3} ms ({:>6.1} µs/plugin) | cached load + call {:>7.3} ms",
        name_of(host.allocation()),
        cached.as_secs_f64() * 1e3,
        call.as_secs_f64() * 1e3,
        per_plugin.as_secs_f64() * 1e6,
        total.as_secs_f64() * 1e3,
    );
}

const CASES: [(&str, &[&str]); 4] = [
    ("rust", &["drop-capabilities"]),
    ("python", &["deny-commands"]),
    ("javascript", &["tmpfs"]),
    ("5 rust", &EXAMPLES),
];

const ALLOCATIONS: [Allocation; 2] = [Allocation::Pooled, Allocation::OnDemand];

fn name_of(allocation: Allocation) -> &'static str {
    match allocation {
        Allocation::Pooled => "pooled",
        Allocation::OnDemand => "on-demand",
    }
}

fn main() {
    // Cargo passes `--bench`; anything else picks cases by label.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // A child runs one case under one allocation: the engine, and with it
    // the allocation, is the process's.
    if let [allocation, label] = args.as_slice()
        && let Some(allocation) = ALLOCATIONS.into_iter().find(|a| name_of(*a) == allocation)
        && let Some((label, names)) = CASES.iter().find(|(l, _)| l == label)
    {
        bench(label, names, allocation);
        return;
    }
    let bench = std::env::current_exe().expect("the bench's own path");
    for (label, _) in CASES {
        if args.is_empty() || args.iter().any(|p| label.starts_with(p.as_str())) {
            for allocation in ALLOCATIONS {
                let status = std::process::Command::new(&bench)
                    .args([name_of(allocation), label])
                    .status()
                    .expect("run the bench");
                assert!(
                    status.success(),
                    "{label} ({}): {status}",
                    name_of(allocation)
                );
            }
        }
    }
}
