//! Lexical path cleaning, one rule for every place that compares or
//! stores a container path: the mount flags, the policy's change checks
//! and its model of what a container reaches.

/// Lexically cleans a container path: `.`, empty components and a
/// trailing slash dropped, `..` taking the previous component away; a
/// relative path is taken from `/`, as runtimes do.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn clean_paths() {
        assert_eq!(clean("/data/"), "/data");
        assert_eq!(clean("//a/./b/../c"), "/a/c");
        assert_eq!(clean("/.."), "/");
        assert_eq!(clean("rel"), "/rel");
    }

    proptest::proptest! {
        /// An absolute path is its own cleaning exactly when no component
        /// after the root is empty, `.` or `..`: what the policy's checks
        /// of destinations and bind prefixes ask for by comparing a path
        /// with its cleaning.
        #[test]
        fn an_absolute_path_is_clean_when_no_component_is_empty_or_dots(
            path in "/[a./]{0,12}"
        ) {
            let rest = &path[1..];
            let by_components =
                rest.is_empty() || rest.split('/').all(|part| !matches!(part, "" | "." | ".."));
            proptest::prop_assert_eq!(clean(&path) == path, by_components);
        }
    }
}
