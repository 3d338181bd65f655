//! The user the container's process runs as: `-u/--user USER[:GROUP]`
//! resolved against the rootfs's own `/etc/passwd` and `/etc/group`, the
//! way podman and buildah resolve it.
//!
//! - `USER` is a name or a uid. A name must have a passwd entry; a uid
//!   needs none (its primary group is then 0, and its home `/`).
//! - Without `GROUP`, the primary group is the passwd entry's, and the
//!   supplementary groups are those of `/etc/group` listing the user by
//!   name. With `GROUP` (a name from `/etc/group`, or a gid), that group
//!   is the only one, as in runc's and podman's explicit form.
//! - The primary group is always among the supplementary ones too, so
//!   that `id` in the container shows it and `setgroups` keeps it.
//!
//! Both files are read through [`Rootfs`], so with chroot semantics: a
//! link in the rootfs never reads the host's files (see [`super::rootfs`]).

use std::path::PathBuf;

use oci_spec::runtime::Spec;

use super::rootfs::{Rootfs, RootfsError};

/// Errors resolving the user.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The user name has no entry in the rootfs's `/etc/passwd`.
    #[error("user {user:?}: no such user in /etc/passwd of {rootfs}")]
    NoSuchUser {
        /// The user as given.
        user: String,
        /// The rootfs.
        rootfs: PathBuf,
    },
    /// The group name has no entry in the rootfs's `/etc/group`.
    #[error("group {group:?}: no such group in /etc/group of {rootfs}")]
    NoSuchGroup {
        /// The group as given.
        group: String,
        /// The rootfs.
        rootfs: PathBuf,
    },
    /// `/etc/passwd` or `/etc/group` could not be read.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
}

/// Who the container's process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// The supplementary groups, the primary first.
    pub additional_gids: Vec<u32>,
    /// The home directory, for `HOME`.
    pub home: String,
}

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// The user name.
    pub name: String,
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// The home directory (may be empty).
    pub home: String,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// The group name.
    pub name: String,
    /// The group id.
    pub gid: u32,
    /// The names of its members.
    pub members: Vec<String>,
}

/// An id as the C library reads one: decimal digits only (no sign, no
/// spaces), within `u32`.
fn parse_id(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The fields of a database line, or `None` for what is not an entry:
/// blank lines, comments, NIS `+`/`-` lines.
fn fields(line: &str) -> Option<Vec<&str>> {
    let line = line.trim_end_matches('\r');
    if line.is_empty() || line.starts_with(['#', '+', '-']) {
        return None;
    }
    Some(line.split(':').collect())
}

/// The entries of an `/etc/passwd` text, in order; malformed lines are
/// skipped.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let fields = fields(line)?;
            let (name, uid, gid) = (fields.first()?, fields.get(2)?, fields.get(3)?);
            if name.is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: name.to_string(),
                uid: parse_id(uid)?,
                gid: parse_id(gid)?,
                home: fields.get(5).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// The entries of an `/etc/group` text, in order; malformed lines are
/// skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let fields = fields(line)?;
            let (name, gid) = (fields.first()?, fields.get(2)?);
            if name.is_empty() {
                return None;
            }
            let members = fields
                .get(3)
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            Some(GroupEntry {
                name: name.to_string(),
                gid: parse_id(gid)?,
                members,
            })
        })
        .collect()
}

/// Resolves `USER[:GROUP]` (names or numbers) against the rootfs's
/// `/etc/passwd` and `/etc/group`. An empty `USER` is root.
pub fn resolve(rootfs: &Rootfs, user: &str) -> Result<User, UserError> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((user, group)) => (user, Some(group).filter(|g| !g.is_empty())),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    let passwd = rootfs
        .read_to_string("/etc/passwd")?
        .map(|text| parse_passwd(&text))
        .unwrap_or_default();
    // The first entry wins, as with getpwnam(3) and getpwuid(3).
    let (uid, entry) = match parse_id(user_part) {
        Some(uid) => (uid, passwd.iter().find(|e| e.uid == uid)),
        None => {
            let entry = passwd.iter().find(|e| e.name == user_part).ok_or_else(|| {
                UserError::NoSuchUser {
                    user: user_part.to_string(),
                    rootfs: rootfs.path().to_path_buf(),
                }
            })?;
            (entry.uid, Some(entry))
        }
    };
    let home = entry
        .map(|e| e.home.as_str())
        .filter(|home| !home.is_empty())
        .unwrap_or("/")
        .to_string();

    let read_groups = || -> Result<Vec<GroupEntry>, UserError> {
        Ok(rootfs
            .read_to_string("/etc/group")?
            .map(|text| parse_group(&text))
            .unwrap_or_default())
    };
    let (gid, additional_gids) = match (group_part, entry) {
        (Some(group), _) => {
            let gid = match parse_id(group) {
                Some(gid) => gid,
                None => read_groups()?
                    .iter()
                    .find(|g| g.name == group)
                    .map(|g| g.gid)
                    .ok_or_else(|| UserError::NoSuchGroup {
                        group: group.to_string(),
                        rootfs: rootfs.path().to_path_buf(),
                    })?,
            };
            (gid, vec![gid])
        }
        (None, Some(entry)) => {
            let mut gids = vec![entry.gid];
            for group in read_groups()? {
                if group.members.contains(&entry.name) && !gids.contains(&group.gid) {
                    gids.push(group.gid);
                }
            }
            (entry.gid, gids)
        }
        // A uid unknown to the rootfs: root's group, as podman and buildah
        // give it.
        (None, None) => (0, vec![0]),
    };
    Ok(User {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// Makes the spec's process run as `user`, and gives it `HOME` unless its
/// environment already has one.
pub fn apply(spec: &mut Spec, user: &User) {
    let Some(process) = spec.process_mut() else {
        return;
    };
    let process_user = process.user_mut();
    process_user.set_uid(user.uid);
    process_user.set_gid(user.gid);
    process_user.set_additional_gids(Some(user.additional_gids.clone()));
    let env = process.env_mut().get_or_insert_default();
    if super::env::lookup(env, "HOME").is_none() {
        env.push(format!("HOME={}", user.home));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
+nis::::::
broken line
bad:x:notanumber:0::/:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\r
nohome:x:1001:1001:::
root:x:999:999:second root:/elsewhere:/bin/sh
";

    const GROUP: &str = "\
root:x:0:
bin:x:1:root,daemon
wheel:x:10: root , alice
alice:x:1000:
users:x:100:alice,bob
users2:x:100:alice
broken
staff:x:50
";

    fn tree(passwd: Option<&str>, group: Option<&str>) -> (tempfile::TempDir, Rootfs) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        if let Some(text) = passwd {
            std::fs::write(dir.path().join("etc/passwd"), text).unwrap();
        }
        if let Some(text) = group {
            std::fs::write(dir.path().join("etc/group"), text).unwrap();
        }
        let rootfs = Rootfs::open(dir.path()).unwrap();
        (dir, rootfs)
    }

    fn user(uid: u32, gid: u32, additional_gids: &[u32], home: &str) -> User {
        User {
            uid,
            gid,
            additional_gids: additional_gids.to_vec(),
            home: home.into(),
        }
    }

    #[test]
    fn passwd_lines_that_are_not_entries_are_skipped() {
        let names: Vec<String> = parse_passwd(PASSWD).into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["root", "daemon", "alice", "nohome", "root"]);
        let alice = &parse_passwd(PASSWD)[2];
        assert_eq!(
            (alice.uid, alice.gid, alice.home.as_str()),
            (1000, 1000, "/home/alice")
        );
    }

    #[test]
    fn group_lines_that_are_not_entries_are_skipped() {
        let groups = parse_group(GROUP);
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(
            names,
            ["root", "bin", "wheel", "alice", "users", "users2", "staff"]
        );
        assert_eq!(groups[2].members, ["root", "alice"]);
        assert!(groups[0].members.is_empty());
    }

    #[test]
    fn ids_are_plain_decimal_numbers() {
        assert_eq!(parse_id("0"), Some(0));
        assert_eq!(parse_id("4294967295"), Some(u32::MAX));
        for text in ["", "+1", "-1", " 1", "1x", "4294967296"] {
            assert_eq!(parse_id(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_name_gets_its_entry_and_its_groups() {
        let (_dir, rootfs) = tree(Some(PASSWD), Some(GROUP));
        assert_eq!(
            resolve(&rootfs, "alice").unwrap(),
            user(1000, 1000, &[1000, 10, 100], "/home/alice")
        );
        assert_eq!(
            resolve(&rootfs, "root").unwrap(),
            user(0, 0, &[0, 1, 10], "/root")
        );
    }

    #[test]
    fn a_uid_with_an_entry_is_that_user() {
        let (_dir, rootfs) = tree(Some(PASSWD), Some(GROUP));
        assert_eq!(
            resolve(&rootfs, "1000").unwrap(),
            user(1000, 1000, &[1000, 10, 100], "/home/alice")
        );
        // The first entry wins.
        assert_eq!(
            resolve(&rootfs, "0").unwrap(),
            user(0, 0, &[0, 1, 10], "/root")
        );
        assert_eq!(
            resolve(&rootfs, "").unwrap(),
            user(0, 0, &[0, 1, 10], "/root")
        );
    }

    #[test]
    fn a_uid_without_an_entry_gets_group_0_and_home_slash() {
        let (_dir, rootfs) = tree(Some(PASSWD), Some(GROUP));
        assert_eq!(resolve(&rootfs, "4242").unwrap(), user(4242, 0, &[0], "/"));
        let (_dir, bare) = tree(None, None);
        assert_eq!(resolve(&bare, "0").unwrap(), user(0, 0, &[0], "/"));
        assert_eq!(
            resolve(&bare, "123:456").unwrap(),
            user(123, 456, &[456], "/")
        );
    }

    #[test]
    fn an_empty_home_is_slash() {
        let (_dir, rootfs) = tree(Some(PASSWD), None);
        assert_eq!(
            resolve(&rootfs, "nohome").unwrap(),
            user(1001, 1001, &[1001], "/")
        );
    }

    #[test]
    fn an_explicit_group_is_the_only_group() {
        let (_dir, rootfs) = tree(Some(PASSWD), Some(GROUP));
        assert_eq!(
            resolve(&rootfs, "alice:users").unwrap(),
            user(1000, 100, &[100], "/home/alice")
        );
        assert_eq!(
            resolve(&rootfs, "alice:4000").unwrap(),
            user(1000, 4000, &[4000], "/home/alice")
        );
        assert_eq!(
            resolve(&rootfs, ":wheel").unwrap(),
            user(0, 10, &[10], "/root")
        );
        // An empty group is no group.
        assert_eq!(
            resolve(&rootfs, "alice:").unwrap(),
            resolve(&rootfs, "alice").unwrap()
        );
    }

    #[test]
    fn an_unknown_user_or_group_is_named() {
        let (dir, rootfs) = tree(Some(PASSWD), Some(GROUP));
        let error = resolve(&rootfs, "nobody2").unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "user \"nobody2\": no such user in /etc/passwd of {}",
                dir.path().display()
            )
        );
        let error = resolve(&rootfs, "alice:nogroup").unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "group \"nogroup\": no such group in /etc/group of {}",
                dir.path().display()
            )
        );
        // Entries that were skipped as malformed name nobody.
        assert!(matches!(
            resolve(&rootfs, "bad"),
            Err(UserError::NoSuchUser { .. })
        ));
        assert!(matches!(
            resolve(&rootfs, "1:broken"),
            Err(UserError::NoSuchGroup { .. })
        ));
        let (_dir, bare) = tree(None, None);
        assert!(matches!(
            resolve(&bare, "root"),
            Err(UserError::NoSuchUser { .. })
        ));
    }

    #[test]
    fn an_unreadable_passwd_is_an_error_not_a_missing_user() {
        let (dir, rootfs) = tree(None, None);
        std::fs::create_dir(dir.path().join("etc/passwd")).unwrap();
        assert!(matches!(
            resolve(&rootfs, "0"),
            Err(UserError::Rootfs(RootfsError::NotAFile { .. }))
        ));
    }

    #[test]
    fn the_spec_gets_the_ids_and_home_unless_set() {
        let mut spec = super::super::default_spec("id", &["sh".into()]);
        apply(&mut spec, &user(1000, 100, &[100, 10], "/home/alice"));
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.user().uid(), 1000);
        assert_eq!(process.user().gid(), 100);
        assert_eq!(
            process.user().additional_gids().as_deref(),
            Some(&[100, 10][..])
        );
        let env = process.env().clone().unwrap();
        assert!(env.contains(&"HOME=/home/alice".to_string()), "{env:?}");

        let mut spec = super::super::default_spec("id", &["sh".into()]);
        spec.process_mut()
            .as_mut()
            .unwrap()
            .set_env(Some(vec!["HOME=/mine".into()]));
        apply(&mut spec, &user(0, 0, &[0], "/root"));
        let env = spec.process().as_ref().unwrap().env().clone().unwrap();
        assert_eq!(env, ["HOME=/mine"]);
        let json = crate::spec::template::config_json(&spec).unwrap();
        assert!(json.contains("\"additionalGids\""), "{json}");
    }
}
