//! The container's networks, configured with CNI plugins between the
//! runtime's create and start, and removed once the container is gone.
//!
//! The container's network namespace is held open by a descriptor from
//! before the first ADD to after the last DEL, and the plugins reach it
//! through `/proc/<specgate's pid>/fd/<N>`: the namespace outlives the
//! container, so DEL finds the interfaces it must remove even after the
//! container exited or failed, and no bind mount is left to clean up.
//!
//! Each ADD is also recorded in libcni's result cache ([`cache`]) before
//! it starts, so that when specgate is killed, its guard or `specgate gc`
//! DELs what it added.

pub mod cache;
pub mod config;
pub mod plugin;

mod error;

pub use error::NetworkError;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use cache::{Leftovers, ResultCache};
pub use config::NetworkList;
pub use plugin::{CniCommand, DEFAULT_PLUGIN_PATH};

/// The default directory of network configurations.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/cni/net.d";

/// The networks a run joins, and where their plugins are.
#[derive(Debug, Clone, Default)]
pub struct Networks {
    lists: Vec<NetworkList>,
    search_path: Vec<PathBuf>,
    cache: ResultCache,
}

impl Networks {
    /// Loads the networks of `config_dir`: those `names` names, in the
    /// directory's order, or every one when `names` is empty (buildah's
    /// choice for a network namespace without names), whose plugins are
    /// found in `plugin_path` (directories separated by `:`). A name with
    /// no configuration, any malformed file, or a plugin not found is an
    /// error.
    pub fn load(
        config_dir: &Path,
        plugin_path: &str,
        names: &[String],
    ) -> Result<Self, NetworkError> {
        let mut lists = config::load_dir(config_dir)?;
        if !names.is_empty() {
            if let Some(name) = names.iter().find(|n| !lists.iter().any(|l| &l.name == *n)) {
                return Err(NetworkError::NoSuchNetwork {
                    name: name.clone(),
                    dir: config_dir.to_path_buf(),
                });
            }
            lists.retain(|l| names.contains(&l.name));
        }
        let search_path: Vec<PathBuf> = std::env::split_paths(plugin_path)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        // A plugin that is missing fails the run before the container
        // is made.
        for list in &lists {
            for index in 0..list.plugins.len() {
                plugin::find(list.plugin_type(index), &search_path, list)?;
            }
        }
        Ok(Networks {
            lists,
            search_path,
            cache: ResultCache::default(),
        })
    }

    /// Whether there is no network to configure.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// The networks, in the order they are added.
    #[cfg(test)]
    pub fn lists(&self) -> &[NetworkList] {
        &self.lists
    }

    /// Adds the container whose init is `pid` to every network, on
    /// interfaces if0, if1, ... (one per network, as buildah names them),
    /// recording each ADD for the cleanup of a killed run of `bundle`.
    /// When one fails, every network added so far, and the plugins of
    /// the failing one, are deleted again before the error returns.
    pub fn attach<'a>(
        &'a self,
        container_id: &'a str,
        pid: i32,
        bundle: &Path,
    ) -> Result<Attached<'a>, NetworkError> {
        let netns: OwnedFd = std::fs::File::open(format!("/proc/{pid}/ns/net"))
            .map_err(|source| NetworkError::Namespace { pid, source })?
            .into();
        // Kept for the cleanup of a killed run, which needs it to DEL
        // even after the container exited.
        crate::runtime::gc::hand_over_namespace(std::os::fd::AsFd::as_fd(&netns));
        let run = cache::RunRecord {
            bundle: bundle.to_path_buf(),
            plugin_path: self.search_path.clone(),
            netns: cache::NetnsRecord::of(pid, &netns)?,
            plugins_netns: cache::own_netns(),
        };
        let netns_path = PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            netns.as_raw_fd()
        ));
        let mut attached = Attached {
            networks: self,
            container_id,
            netns_path,
            added: Vec::new(),
            _netns: netns,
        };
        for (index, list) in self.lists.iter().enumerate() {
            let ifname = format!("if{index}");
            // Recorded before the ADD starts: a run killed during it
            // leaves what its cleanup needs.
            let record = self.cache.path(&list.name, container_id, &ifname)?;
            let mut entry = cache::Entry::new(list, container_id, &ifname, run.clone());
            self.cache.write(&record, &entry)?;
            let added = attached.add(list, &ifname).and_then(|result| {
                entry.result = result.clone();
                self.cache.update(&record, &entry)?;
                Ok(result)
            });
            match added {
                Ok(result) => attached.added.push(Added {
                    list: index,
                    ifname,
                    result,
                    record,
                }),
                Err(e) => {
                    // The CNI spec's cleanup of a failed ADD: DEL for
                    // every plugin of the list, even those never called.
                    // Its failures are expected (the same configuration
                    // failed), and the ADD's error says what matters.
                    attached.del(list, &ifname, None, tracing::Level::DEBUG);
                    self.cache.remove(&record);
                    attached.detach();
                    return Err(e);
                }
            }
        }
        Ok(attached)
    }
}

/// One network added.
#[derive(Debug)]
struct Added {
    list: usize,
    ifname: String,
    result: Option<Value>,
    /// Its record in the result cache.
    record: PathBuf,
}

/// The container's networks once added: deleted, in reverse order, on
/// [`Attached::detach`] or when dropped. Holds the container's network
/// namespace open until then.
#[derive(Debug)]
pub struct Attached<'a> {
    networks: &'a Networks,
    container_id: &'a str,
    netns_path: PathBuf,
    added: Vec<Added>,
    // Dropped last, after every DEL.
    _netns: OwnedFd,
}

/// A network the container joined, as its ADD left it.
#[derive(Debug, Clone, Copy)]
pub struct Joined<'a> {
    /// The network's name.
    pub name: &'a str,
    /// The container's interface on it.
    pub interface: &'a str,
    /// The CNI result of the list's last plugin.
    pub result: Option<&'a Value>,
}

impl Attached<'_> {
    /// The networks added so far, in order: what the audit record holds.
    pub fn joined(&self) -> Vec<Joined<'_>> {
        self.added
            .iter()
            .map(|added| Joined {
                name: &self.networks.lists[added.list].name,
                interface: &added.ifname,
                result: added.result.as_ref(),
            })
            .collect()
    }

    fn invocation<'b>(&'b self, ifname: &'b str) -> plugin::Invocation<'b> {
        plugin::Invocation {
            container_id: self.container_id,
            netns: &self.netns_path,
            ifname,
            search_path: &self.networks.search_path,
        }
    }

    /// ADD through the list's plugins, each given the previous one's
    /// result; returns the last result.
    fn add(&self, list: &NetworkList, ifname: &str) -> Result<Option<Value>, NetworkError> {
        let invocation = self.invocation(ifname);
        let mut result = None;
        for index in 0..list.plugins.len() {
            result = plugin::exec(list, index, CniCommand::Add, &invocation, result.as_ref())?;
        }
        tracing::debug!(
            "network {} added on {ifname} from {}",
            list.name,
            list.file.display()
        );
        Ok(result)
    }

    fn del(
        &self,
        list: &NetworkList,
        ifname: &str,
        result: Option<&Value>,
        level: tracing::Level,
    ) -> bool {
        plugin::del(list, &self.invocation(ifname), result, level)
    }

    /// Deletes every network added, last first; returns whether every
    /// DEL succeeded (failures are reported as warnings). The record of
    /// a network whose DEL failed is kept, for `specgate gc` to retry.
    pub fn detach(&mut self) -> bool {
        let mut clean = true;
        while let Some(added) = self.added.pop() {
            let list = &self.networks.lists[added.list];
            let deleted = self.del(
                list,
                &added.ifname,
                added.result.as_ref(),
                tracing::Level::WARN,
            );
            if deleted {
                self.networks.cache.remove(&added.record);
            }
            clean &= deleted;
        }
        clean
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        self.detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_network_that_does_not_exist_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.conf"),
            r#"{"name":"a","type":"loopback"}"#,
        )
        .unwrap();
        let names = ["a".to_string(), "b".to_string()];
        let error = Networks::load(dir.path(), "/bin:/usr/bin", &names)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!(
                "--network b: no such CNI network in {}",
                dir.path().display()
            )
        );
        let one = Networks::load(dir.path(), DEFAULT_PLUGIN_PATH, &names[..1]).unwrap();
        assert_eq!(one.lists().len(), 1);
        assert_eq!(
            one.search_path,
            [PathBuf::from("/usr/lib/cni"), "/opt/cni/bin".into()]
        );
    }
}
