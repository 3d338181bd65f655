//! The id maps of a rootless run: the caller's own uid and gid as the
//! container's root, and the subordinate ids /etc/subuid and /etc/subgid
//! give the caller as the container's other ids, as podman and buildah
//! map them.
//!
//! Mapping more than one id needs the setuid helpers newuidmap and
//! newgidmap (Debian's `uidmap`): the runtime (runc) looks them up in
//! PATH when the spec maps more than the caller's own id. Without them,
//! or without subordinate ids, the container gets the caller's ids alone
//! (container 0 → the caller), which is all the kernel lets an
//! unprivileged process map by itself.

use std::path::Path;

use super::namespaces::IdMap;

/// Where the subordinate uids are assigned.
pub const SUBUID: &str = "/etc/subuid";
/// Where the subordinate gids are assigned.
pub const SUBGID: &str = "/etc/subgid";

/// Errors computing a rootless run's id maps.
#[derive(Debug, thiserror::Error)]
pub enum SubidError {
    /// /etc/subuid or /etc/subgid exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A `--uidmap`/`--gidmap` names ids the caller does not have.
    #[error(
        "{flag} {map}: host ids {first}-{last} are not yours to map (a rootless run maps 0 to you and 1-{count} to your subordinate ids in {file})"
    )]
    NotMapped {
        /// `--uidmap` or `--gidmap`.
        flag: &'static str,
        /// The map as given.
        map: String,
        /// The first unmapped host id, as the flag counts them.
        first: u32,
        /// The last one.
        last: u32,
        /// How many ids the caller has, besides its own.
        count: u64,
        /// /etc/subuid or /etc/subgid.
        file: &'static str,
    },
}

/// One `NAME:START:COUNT` line of /etc/subuid or /etc/subgid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The first subordinate id.
    pub start: u32,
    /// How many.
    pub count: u32,
}

/// The ranges `text` (the contents of /etc/subuid or /etc/subgid)
/// assigns to the user called `name` or numbered `id`, in file order, as
/// shadow's newuidmap reads them.
pub fn ranges(text: &str, name: Option<&str>, id: u32) -> Vec<Range> {
    let id = id.to_string();
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let (owner, start, count) = (fields.next()?, fields.next()?, fields.next()?);
            if owner != id && Some(owner) != name {
                return None;
            }
            let range = Range {
                start: start.parse().ok()?,
                count: count.parse().ok()?,
            };
            (range.count > 0).then_some(range)
        })
        .collect()
}

/// The maps that make `own` the container's root and the `ranges` its
/// ids from 1 on.
pub fn maps(own: u32, ranges: &[Range]) -> Vec<IdMap> {
    let mut maps = vec![IdMap {
        container: 0,
        host: own,
        size: 1,
    }];
    let mut next: u32 = 1;
    for range in ranges {
        let Some(after) = next.checked_add(range.count) else {
            break;
        };
        maps.push(IdMap {
            container: next,
            host: range.start,
            size: range.count,
        });
        next = after;
    }
    maps
}

/// The caller's id maps for a rootless run, and what was missing when
/// they are the single mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerMaps {
    /// The uid maps.
    pub uid: Vec<IdMap>,
    /// The gid maps.
    pub gid: Vec<IdMap>,
    /// Why only the caller's own ids are mapped, when that is so.
    pub single_because: Option<String>,
}

impl CallerMaps {
    /// The maps of the calling user (effective uid and gid), from
    /// /etc/subuid and /etc/subgid, when newuidmap and newgidmap are in
    /// PATH; else the single mapping.
    pub fn of_caller() -> Result<Self, SubidError> {
        let uid = nix::unistd::geteuid();
        let gid = nix::unistd::getegid();
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name);
        let read = |path: &'static str| match std::fs::read_to_string(path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(source) => Err(SubidError::Read { path, source }),
        };
        let uid_ranges = ranges(&read(SUBUID)?, name.as_deref(), uid.as_raw());
        let gid_ranges = ranges(&read(SUBGID)?, name.as_deref(), uid.as_raw());
        let tools = ["newuidmap", "newgidmap"]
            .into_iter()
            .filter(|tool| !in_path(tool))
            .collect::<Vec<_>>();
        let single_because = match &name {
            _ if !tools.is_empty() => Some(format!(
                "{} not found in PATH (install the uidmap package)",
                tools.join(" and ")
            )),
            // newuidmap and newgidmap refuse a caller they cannot name
            // ("Cannot determine your user name"), whatever /etc/subuid
            // says of its uid.
            None => Some(format!(
                "uid {uid} has no user name in /etc/passwd or any other source of /etc/nsswitch.conf, and newuidmap maps subordinate ids only for a named user"
            )),
            Some(name) if uid_ranges.is_empty() => {
                Some(format!("no subordinate uids for {name} in {SUBUID}"))
            }
            Some(name) if gid_ranges.is_empty() => {
                Some(format!("no subordinate gids for {name} in {SUBGID}"))
            }
            Some(_) => None,
        };
        let (uid_ranges, gid_ranges) = if single_because.is_some() {
            (Vec::new(), Vec::new())
        } else {
            (uid_ranges, gid_ranges)
        };
        Ok(CallerMaps {
            uid: maps(uid.as_raw(), &uid_ranges),
            gid: maps(gid.as_raw(), &gid_ranges),
            single_because,
        })
    }
}

/// Whether an executable named `name` is in PATH, as the runtime's
/// lookup of newuidmap and newgidmap finds them.
fn in_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(Path::new(&dir).join(name))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// `--uidmap`/`--gidmap` of a rootless run, whose host ids count in the
/// caller's user namespace (0 the caller, 1.. its subordinate ids, as
/// podman reads them), turned into real host ids through `outer`.
pub fn translate(
    given: &[IdMap],
    outer: &[IdMap],
    flag: &'static str,
    file: &'static str,
) -> Result<Vec<IdMap>, SubidError> {
    let mut out = Vec::new();
    for map in given {
        let mut at = u64::from(map.host);
        let end = at + u64::from(map.size);
        while at < end {
            let covering = outer.iter().find(|o| {
                let start = u64::from(o.container);
                start <= at && at < start + u64::from(o.size)
            });
            let Some(o) = covering else {
                let count: u64 = outer.iter().map(|o| u64::from(o.size)).sum();
                return Err(SubidError::NotMapped {
                    flag,
                    map: format!("{}:{}:{}", map.container, map.host, map.size),
                    first: at as u32,
                    last: (end - 1) as u32,
                    count: count.saturating_sub(1),
                    file,
                });
            };
            let o_end = u64::from(o.container) + u64::from(o.size);
            let take = end.min(o_end) - at;
            out.push(IdMap {
                container: (u64::from(map.container) + at - u64::from(map.host)) as u32,
                host: (u64::from(o.host) + at - u64::from(o.container)) as u32,
                size: take as u32,
            });
            at += take;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(container: u32, host: u32, size: u32) -> IdMap {
        IdMap {
            container,
            host,
            size,
        }
    }

    #[test]
    fn ranges_are_found_by_name_or_uid_in_file_order() {
        let text = "# comment\nalice:100000:65536\nbob:165536:65536\n1000:300000:10\nalice:400000:0\nbroken\n";
        assert_eq!(
            ranges(text, Some("alice"), 1000),
            vec![
                Range {
                    start: 100000,
                    count: 65536
                },
                Range {
                    start: 300000,
                    count: 10
                }
            ]
        );
        assert!(ranges(text, Some("carol"), 1002).is_empty());
        assert!(ranges(text, None, 1002).is_empty());
    }

    #[test]
    fn the_caller_is_root_and_its_ranges_follow() {
        let ranges = [
            Range {
                start: 100000,
                count: 65536,
            },
            Range {
                start: 300000,
                count: 10,
            },
        ];
        assert_eq!(
            maps(1000, &ranges),
            vec![
                map(0, 1000, 1),
                map(1, 100000, 65536),
                map(65537, 300000, 10)
            ]
        );
        assert_eq!(maps(1000, &[]), vec![map(0, 1000, 1)]);
    }

    #[test]
    fn given_maps_count_in_the_callers_namespace() {
        let outer = [map(0, 1000, 1), map(1, 100000, 65536)];
        assert_eq!(
            translate(&[map(0, 1, 10)], &outer, "--uidmap", SUBUID).unwrap(),
            vec![map(0, 100000, 10)]
        );
        // A map across the caller's own id and its subordinate ids splits.
        assert_eq!(
            translate(&[map(0, 0, 3)], &outer, "--uidmap", SUBUID).unwrap(),
            vec![map(0, 1000, 1), map(1, 100000, 2)]
        );
        let err = translate(&[map(0, 65530, 10)], &outer, "--gidmap", SUBGID).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--gidmap 0:65530:10: host ids 65537-65539 are not yours to map (a rootless run maps 0 to you and 1-65536 to your subordinate ids in /etc/subgid)"
        );
    }
}
