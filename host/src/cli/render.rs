//! What `plugin trace` and `plugin inspect` print, as text or JSON.

use anyhow::Result;

use crate::policy::audit;
use crate::policy::error::escape;
use crate::policy::setup::Inspection;
use crate::policy::{Declared, Info};
use crate::run::Trace;

/// A trace as JSON: per plugin, what it is and what it changed.
pub fn trace_json(trace: &Trace) -> Result<String> {
    let Trace {
        chain,
        report,
        refusal,
    } = trace;
    let plugins: Vec<serde_json::Value> = chain
        .plugins()
        .iter()
        .map(|p| {
            let changes: Vec<audit::ChangeRecord> = report
                .applied
                .iter()
                .filter(|a| a.plugin == p.name())
                .map(audit::ChangeRecord::from)
                .collect();
            serde_json::json!({
                "name": p.name(),
                "path": p.path(),
                "sha256": p.sha256(),
                "hooks": p.hooks().iter().map(|h| h.interface()).collect::<Vec<_>>(),
                "changes": changes,
            })
        })
        .collect();
    let value = serde_json::json!({
        "plugins": plugins,
        "skipped": report.skipped.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        "would_deny": report.would_deny.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        "refused": refusal.as_ref().map(ToString::to_string),
    });
    Ok(format!("{}\n", serde_json::to_string_pretty(&value)?))
}

/// A trace as text: a line per plugin, then one per change.
pub fn trace_text(trace: &Trace) -> String {
    let Trace {
        chain,
        report,
        refusal,
    } = trace;
    let mut out = String::new();
    for plugin in chain.plugins() {
        // Every line is one line: the changes and errors come escaped
        // from the chain, names and paths are escaped here.
        out.push_str(&format!(
            "plugin {} ({})\n",
            escape(plugin.name()),
            escape(&plugin.path().display().to_string())
        ));
        let mut any = false;
        for applied in report.applied.iter().filter(|a| a.plugin == plugin.name()) {
            any = true;
            let mark = if applied.grant.is_some() { '+' } else { '-' };
            out.push_str(&format!("  {mark} {}: {}", applied.hook, applied.change));
            if let Some(grant) = &applied.grant {
                out.push_str(&format!(" (granted by {grant})"));
            }
            out.push('\n');
        }
        if !any {
            out.push_str("  (no changes)\n");
        }
    }
    for error in &report.skipped {
        out.push_str(&format!("skipped: {error}\n"));
    }
    for error in &report.would_deny {
        out.push_str(&format!("would deny: {error}\n"));
    }
    match refusal {
        Some(error) if error.is_denial() => out.push_str(&format!("denied: {error}\n")),
        Some(error) => out.push_str(&format!("failed: {error}\n")),
        None => {}
    }
    out
}

/// `wit-package@version`, or empty for a plugin of no known contract.
fn contract(declared: &Declared) -> String {
    crate::policy::plugin::contract_of(&declared.exports)
        .map(|v| format!("{}@{v}", crate::policy::bindings::PACKAGE))
        .unwrap_or_default()
}

fn hooks(declared: &Declared) -> Vec<&str> {
    declared.hooks.iter().map(|h| h.interface()).collect()
}

/// Names as the file spells them, escaped: read without compiling, they
/// are not yet known to be valid component names.
fn names(names: &[String]) -> Vec<String> {
    names.iter().map(|n| escape(n).into_owned()).collect()
}

/// What `inspect` says in place of `describe()` for a plugin not compiled.
const NOT_DESCRIBED: &str = "(not compiled yet: `specgate plugin compile FILE`, or \
                             `plugin inspect --compile`, runs describe())";

/// An inspection as JSON.
pub fn inspection_json(inspection: &Inspection) -> Result<String> {
    let Inspection { declared, info } = inspection;
    let said = |field: fn(&Info) -> &String| info.as_ref().map(|i| escape(field(i)));
    let value = serde_json::json!({
        "path": declared.path,
        "size": declared.size,
        "sha256": declared.sha256,
        "contract": contract(declared),
        "hooks": hooks(declared),
        "exports": names(&declared.exports),
        "imports": names(&declared.imports),
        "compiled": info.is_some(),
        "name": said(|i| &i.name),
        "version": said(|i| &i.version),
        "description": said(|i| &i.description),
    });
    Ok(format!("{}\n", serde_json::to_string_pretty(&value)?))
}

/// An inspection as text, a field a line.
pub fn inspection_text(inspection: &Inspection) -> String {
    let Inspection { declared, info } = inspection;
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<12} {v}\n"));
    line("path:", &escape(&declared.path.display().to_string()));
    line("size:", &format!("{} bytes", declared.size));
    line("sha256:", &declared.sha256);
    line("pin:", &format!("sha256 = \"{}\"", declared.sha256));
    line("contract:", &contract(declared));
    line("hooks:", &hooks(declared).join(", "));
    line("imports:", &names(&declared.imports).join(", "));
    // The plugin's own words: escaped, so that they cannot forge or
    // erase lines.
    match info {
        Some(info) => {
            line("name:", &escape(&info.name));
            line("version:", &escape(&info.version));
            line("description:", &escape(&info.description));
        }
        None => line("describe():", NOT_DESCRIBED),
    }
    out
}
