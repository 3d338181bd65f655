//! CNI network configurations: `*.conf` (one plugin) and `*.conflist`
//! (a chain of plugins) files in a directory, as libcni reads them.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::NetworkError;

/// One network: a chain of plugins, each with its own configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    /// The network's name (`name`), by which `--network` selects it.
    pub name: String,
    /// The CNI version of its configuration (`cniVersion`).
    pub cni_version: String,
    /// Each plugin's configuration, in the order ADD calls them.
    pub plugins: Vec<Map<String, Value>>,
    /// The file it came from.
    pub file: PathBuf,
}

impl NetworkList {
    /// The configuration plugin `index` reads on stdin: its own, with the
    /// network's name and version, and the previous result when there is
    /// one, as the CNI spec has the runtime inject them.
    pub fn plugin_config(&self, index: usize, prev_result: Option<&Value>) -> Vec<u8> {
        let mut config = self.plugins[index].clone();
        config.insert("name".into(), Value::String(self.name.clone()));
        config.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        match prev_result {
            Some(result) => config.insert("prevResult".into(), result.clone()),
            None => config.remove("prevResult"),
        };
        serde_json::to_vec(&config).unwrap_or_default()
    }

    /// The type (the executable's name) of plugin `index`.
    pub fn plugin_type(&self, index: usize) -> &str {
        self.plugins[index]
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Whether DEL gets the ADD's result as `prevResult`: from CNI 0.4.0
    /// on, as libcni does.
    pub fn del_gets_prev_result(&self) -> bool {
        let mut parts = self.cni_version.split('.').map(|p| p.parse::<u32>().ok());
        let version = (
            parts.next().flatten().unwrap_or(0),
            parts.next().flatten().unwrap_or(0),
        );
        version >= (0, 4)
    }
}

/// Reads the networks of `dir`: its `*.conf` files, then its
/// `*.conflist` files, each set in name order (libcni's and buildah's
/// order, which gives the interfaces their numbers). A missing directory
/// has none.
pub fn load_dir(dir: &Path) -> Result<Vec<NetworkList>, NetworkError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(NetworkError::ConfigDir {
                dir: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .map(|e| e.path())
        .collect();
    files.sort();
    let with_ext = |ext: &str| {
        files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == ext))
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut lists = Vec::new();
    for file in with_ext("conf") {
        lists.push(parse(&file, read(&file)?, false)?);
    }
    for file in with_ext("conflist") {
        lists.push(parse(&file, read(&file)?, true)?);
    }
    Ok(lists)
}

fn read(file: &Path) -> Result<Vec<u8>, NetworkError> {
    crate::sys::bounded::read_bounded(file, crate::sys::bounded::CONFIG_LIMIT).map_err(|source| {
        NetworkError::ReadConfig {
            file: file.to_path_buf(),
            source,
        }
    })
}

/// Parses one file: a list (`*.conflist`) or a single plugin's
/// configuration (`*.conf`), which becomes a list of one.
pub fn parse(file: &Path, bytes: Vec<u8>, list: bool) -> Result<NetworkList, NetworkError> {
    let malformed = |reason: String| NetworkError::Malformed {
        file: file.to_path_buf(),
        reason,
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(malformed("not a JSON object".into()));
    };
    let string = |object: &Map<String, Value>, key: &str| match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(format!("`{key}` is not a string"))),
    };
    let name = string(&object, "name")?.filter(|n| !n.is_empty());
    let cni_version = string(&object, "cniVersion")?.unwrap_or_default();
    let plugins = if list {
        match object.remove("plugins") {
            Some(Value::Array(plugins)) if !plugins.is_empty() => plugins
                .into_iter()
                .enumerate()
                .map(|(i, p)| match p {
                    Value::Object(p) => Ok(p),
                    _ => Err(malformed(format!("plugin {i} is not a JSON object"))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(Value::Array(_)) | None => return Err(malformed("no plugins".into())),
            Some(_) => return Err(malformed("`plugins` is not an array".into())),
        }
    } else {
        vec![object]
    };
    for (i, plugin) in plugins.iter().enumerate() {
        match plugin.get("type") {
            Some(Value::String(t)) if !t.is_empty() && !t.contains('/') => {}
            _ => return Err(malformed(format!("plugin {i} has no `type`"))),
        }
    }
    let name = name.ok_or_else(|| malformed("no `name`".into()))?;
    Ok(NetworkList {
        name,
        cni_version,
        plugins,
        file: file.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str, list: bool) -> Result<NetworkList, NetworkError> {
        parse(Path::new("/x/net.conf"), text.as_bytes().to_vec(), list)
    }

    #[test]
    fn a_single_conf_becomes_a_list_of_one() {
        let net = conf(
            r#"{"cniVersion":"1.0.0","name":"lo","type":"loopback"}"#,
            false,
        )
        .unwrap();
        assert_eq!(net.name, "lo");
        assert_eq!(net.plugins.len(), 1);
        assert_eq!(net.plugin_type(0), "loopback");
        assert!(net.del_gets_prev_result());
    }

    #[test]
    fn each_plugin_gets_the_name_version_and_previous_result() {
        let net = conf(
            r#"{"cniVersion":"0.4.0","name":"b","plugins":[{"type":"bridge"},{"type":"tuning","name":"other"}]}"#,
            true,
        )
        .unwrap();
        let config: Value =
            serde_json::from_slice(&net.plugin_config(1, Some(&serde_json::json!({"ips": []}))))
                .unwrap();
        assert_eq!(config["name"], "b");
        assert_eq!(config["cniVersion"], "0.4.0");
        assert_eq!(config["type"], "tuning");
        assert_eq!(config["prevResult"], serde_json::json!({"ips": []}));
        let first: Value = serde_json::from_slice(&net.plugin_config(0, None)).unwrap();
        assert!(first.get("prevResult").is_none());
    }

    #[test]
    fn old_versions_get_no_result_on_del() {
        let net = conf(r#"{"cniVersion":"0.3.1","name":"n","type":"x"}"#, false).unwrap();
        assert!(!net.del_gets_prev_result());
    }

    #[test]
    fn malformed_files_are_refused_naming_the_file_and_fault() {
        for (text, list, fault) in [
            ("{", false, "EOF"),
            ("[]", false, "not a JSON object"),
            (r#"{"name":"n"}"#, false, "plugin 0 has no `type`"),
            (r#"{"type":"bridge"}"#, false, "no `name`"),
            (r#"{"name":"n","plugins":[]}"#, true, "no plugins"),
            (
                r#"{"name":"n","plugins":[{"type":"../x"}]}"#,
                true,
                "no `type`",
            ),
            (r#"{"name":7,"type":"x"}"#, false, "`name` is not a string"),
        ] {
            let error = conf(text, list).unwrap_err().to_string();
            assert!(error.starts_with("/x/net.conf: "), "{error}");
            assert!(error.contains(fault), "{text}: {error}");
        }
    }

    #[test]
    fn a_directory_is_read_conf_first_each_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("20-b.conf", r#"{"name":"b","type":"x"}"#);
        write("10-c.conflist", r#"{"name":"c","plugins":[{"type":"x"}]}"#);
        write("30-a.conf", r#"{"name":"a","type":"x"}"#);
        write("README", "not a network");
        let names: Vec<String> = load_dir(dir.path())
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, ["b", "a", "c"]);
        assert!(load_dir(&dir.path().join("missing")).unwrap().is_empty());
    }
}
