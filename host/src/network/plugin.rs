//! Executing CNI plugins as the CNI spec has a runtime do it: the
//! command and the container in the environment, the network's
//! configuration on stdin, the result (or a JSON error) on stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::Value;

use super::config::NetworkList;
use super::error::NetworkError;

/// The default directories searched for plugins: Debian's and the
/// upstream install location.
pub const DEFAULT_PLUGIN_PATH: &str = "/usr/lib/cni:/opt/cni/bin";

/// A CNI command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CniCommand {
    /// Adds the container to the network.
    Add,
    /// Removes the container from the network.
    Del,
}

impl CniCommand {
    /// Its name in `CNI_COMMAND`.
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
        }
    }
}

/// What a plugin is told about the container.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_NETNS`: a path that opens the container's network namespace.
    pub netns: &'a Path,
    /// `CNI_IFNAME`: the interface inside the container.
    pub ifname: &'a str,
    /// `CNI_PATH`: where plugins (and the plugins they delegate to, such
    /// as IPAM) are looked up.
    pub search_path: &'a [PathBuf],
}

/// The interfaces and addresses a plugin's ADD reports (CNI 0.3.0 and
/// later; what specgate reads of it, the rest is passed on untouched).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CniResult {
    /// The interfaces made.
    pub interfaces: Vec<Interface>,
    /// The addresses given.
    pub ips: Vec<IpConfig>,
}

/// One interface of a result.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its hardware address.
    pub mac: String,
    /// The namespace it is in; empty for the host's.
    pub sandbox: String,
}

/// One address of a result.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IpConfig {
    /// The address, in CIDR notation.
    pub address: String,
    /// The gateway, if any.
    pub gateway: Option<String>,
}

/// The error a failing plugin prints on stdout.
#[derive(Debug, Deserialize)]
struct PluginError {
    code: u32,
    msg: String,
    #[serde(default)]
    details: String,
}

/// Finds the executable of plugin `plugin_type` in `search_path`.
pub fn find(
    plugin_type: &str,
    search_path: &[PathBuf],
    network: &NetworkList,
) -> Result<PathBuf, NetworkError> {
    use std::os::unix::fs::PermissionsExt;
    search_path
        .iter()
        .map(|dir| dir.join(plugin_type))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| NetworkError::PluginNotFound {
            plugin: plugin_type.to_string(),
            network: network.name.clone(),
            file: network.file.clone(),
            search_path: std::env::join_paths(search_path)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })
}

/// Runs plugin `index` of `network` for `command`, with `prev_result`
/// injected into its configuration, and returns its result (ADD) or
/// nothing (DEL).
pub fn exec(
    network: &NetworkList,
    index: usize,
    command: CniCommand,
    invocation: &Invocation<'_>,
    prev_result: Option<&Value>,
) -> Result<Option<Value>, NetworkError> {
    let plugin_type = network.plugin_type(index);
    let program = find(plugin_type, invocation.search_path, network)?;
    let failed = |message: String| NetworkError::Plugin {
        plugin: plugin_type.to_string(),
        command: command.as_str(),
        network: network.name.clone(),
        file: network.file.clone(),
        message,
    };
    let config = network.plugin_config(index, prev_result);
    // The rest of our environment goes along, as libcni passes it: some
    // plugins run iptables or ip from PATH.
    let mut child = Command::new(&program)
        .env("CNI_COMMAND", command.as_str())
        .env("CNI_CONTAINERID", invocation.container_id)
        .env("CNI_NETNS", invocation.netns)
        .env("CNI_IFNAME", invocation.ifname)
        .env("CNI_ARGS", "")
        .env(
            "CNI_PATH",
            std::env::join_paths(invocation.search_path).unwrap_or_default(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetworkError::Spawn {
            program: program.clone(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A plugin that exits without reading its configuration reports
        // why on stdout; the write's own error says less.
        let _ = stdin.write_all(&config);
    }
    let output = child
        .wait_with_output()
        .map_err(|source| NetworkError::Spawn {
            program: program.clone(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    if !output.status.success() {
        let message = match serde_json::from_slice::<PluginError>(&output.stdout) {
            Ok(e) if e.details.is_empty() => format!("{} (code {})", e.msg, e.code),
            Ok(e) => format!("{}: {} (code {})", e.msg, e.details, e.code),
            Err(_) if !stderr.is_empty() => format!("{}: {stderr}", output.status),
            Err(_) => format!("{}", output.status),
        };
        return Err(failed(message));
    }
    if !stderr.is_empty() {
        tracing::debug!("CNI plugin {plugin_type} {}: {stderr}", command.as_str());
    }
    if command == CniCommand::Del {
        return Ok(None);
    }
    let result: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| failed(format!("its result is not JSON: {e}")))?;
    if !result.is_object() {
        return Err(failed("its result is not a JSON object".into()));
    }
    let typed: CniResult = serde_json::from_value(result.clone())
        .map_err(|e| failed(format!("malformed result: {e}")))?;
    for ip in &typed.ips {
        tracing::debug!(
            "network {}: {} on {} (gateway {:?})",
            network.name,
            ip.address,
            invocation.ifname,
            ip.gateway
        );
    }
    Ok(Some(result))
}

/// DEL through the list's plugins in reverse order, each with the ADD's
/// result; a failure is reported at `level` and the others still run, so
/// that as much as can be is released. Returns whether every plugin
/// succeeded.
pub fn del(
    list: &NetworkList,
    invocation: &Invocation<'_>,
    result: Option<&Value>,
    level: tracing::Level,
) -> bool {
    let result = result.filter(|_| list.del_gets_prev_result());
    let mut clean = true;
    for index in (0..list.plugins.len()).rev() {
        if let Err(e) = exec(list, index, CniCommand::Del, invocation, result) {
            if level == tracing::Level::DEBUG {
                tracing::debug!("{e}");
            } else {
                tracing::warn!("{e}");
            }
            clean = false;
        }
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(plugin_type: &str) -> NetworkList {
        super::super::config::parse(
            Path::new("/etc/cni/net.d/10-t.conf"),
            format!(r#"{{"cniVersion":"1.0.0","name":"t","type":"{plugin_type}"}}"#).into_bytes(),
            false,
        )
        .unwrap()
    }

    #[test]
    fn a_missing_plugin_is_named_with_its_network_and_the_path() {
        let search = [
            PathBuf::from("/nonexistent/a"),
            PathBuf::from("/nonexistent/b"),
        ];
        let error = find("nosuch", &search, &network("nosuch"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "CNI plugin nosuch of network t (/etc/cni/net.d/10-t.conf): not found in /nonexistent/a:/nonexistent/b (--cni-plugin-path)"
        );
    }

    #[test]
    fn a_plugins_json_error_is_reported_with_its_code() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("failing");
        std::fs::write(
            &script,
            "#!/bin/sh\ncat >/dev/null\necho '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"no way\",\"details\":\"because\"}'\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let search = [dir.path().to_path_buf()];
        let invocation = Invocation {
            container_id: "c",
            netns: Path::new("/proc/self/ns/net"),
            ifname: "if0",
            search_path: &search,
        };
        let error = exec(&network("failing"), 0, CniCommand::Add, &invocation, None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "CNI plugin failing ADD for network t (/etc/cni/net.d/10-t.conf): no way: because (code 11)"
        );
    }
}
