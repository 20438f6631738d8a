//! Relative `/`-separated paths of a tree: checks and small helpers.

use std::collections::HashMap;

use super::TreeError;

/// Check every path is relative, `/`-separated, without empty, `.` or `..`
/// parts, and appears once; return an index from path to position.
pub(super) fn index<'a>(paths: impl Iterator<Item = &'a str>) -> Result<HashMap<&'a str, usize>, TreeError> {
    let mut out = HashMap::new();
    for (i, path) in paths.enumerate() {
        let bad = |reason: &'static str| TreeError::Path {
            path: path.to_owned(),
            reason,
        };
        if path.is_empty() {
            return Err(bad("empty path"));
        }
        if path.starts_with('/') {
            return Err(bad("absolute path; paths are relative to the directory"));
        }
        if path.contains('\0') {
            return Err(bad("NUL byte in path"));
        }
        if path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(bad("empty, '.' or '..' path component"));
        }
        if out.insert(path, i).is_some() {
            return Err(bad("listed twice"));
        }
    }
    Ok(out)
}

/// The folder holding `path` (`""` for the root).
pub(super) fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("")
}

/// The last component of `path`.
pub(super) fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map(|(_, name)| name).unwrap_or(path)
}

/// `dir/rel` with `.` parts dropped and `..` resolved; `None` when `rel`
/// climbs out of the tree or is absolute.
pub(super) fn join(dir: &str, rel: &str) -> Option<String> {
    if rel.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// How many folders deep `dir` is (`""` is 0).
pub(super) fn depth(dir: &str) -> usize {
    if dir.is_empty() {
        0
    } else {
        dir.split('/').count()
    }
}

/// A logical tensor name inside a unit rooted at `dir`: the bare name at the
/// tree root, `dir:name` below it.
pub(super) fn in_unit(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}:{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert!(index(["a", "b/c", ".metadata"].into_iter()).is_ok());
        for bad in ["", "/abs", "a//b", "a/./b", "../x", "a/", "x\0y"] {
            assert!(index([bad].into_iter()).is_err(), "{bad:?}");
        }
        assert!(index(["a", "a"].into_iter()).is_err());
    }

    #[test]
    fn joins_and_parents() {
        assert_eq!(join("", "__0_0.distcp").as_deref(), Some("__0_0.distcp"));
        assert_eq!(join("a/b", "./c").as_deref(), Some("a/b/c"));
        assert_eq!(join("a/b", "../c").as_deref(), Some("a/c"));
        assert_eq!(join("", "../c"), None);
        assert_eq!(join("a", "/etc/passwd"), None);
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(parent("c"), "");
        assert_eq!(file_name("a/b/c"), "c");
        assert_eq!(depth(""), 0);
        assert_eq!(depth("a/b"), 2);
        assert_eq!(in_unit("", "w"), "w");
        assert_eq!(in_unit("unet", "w"), "unet:w");
    }
}
