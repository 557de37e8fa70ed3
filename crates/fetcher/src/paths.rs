//! Path sanitising for `output_file` values and archive entry names.
//!
//! Both come from outside (a task description, an archive) and must never name anything outside
//! the directory they are joined to.

use std::path::{Component, Path, PathBuf};

/// Turns an untrusted relative path into one that stays inside whatever directory it is joined
/// to: absolute paths and `..` are refused, `.` components dropped. The error says why.
pub(crate) fn sanitize_relative(raw: &Path) -> Result<PathBuf, String> {
    if raw.as_os_str().is_empty() {
        return Err("the path is empty".into());
    }
    if raw.as_os_str().as_encoded_bytes().contains(&0) {
        return Err("the path contains a NUL byte".into());
    }
    let mut out = PathBuf::new();
    for comp in raw.components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err("the path contains '..'".into()),
            Component::RootDir | Component::Prefix(_) => return Err("the path is absolute".into()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("the path names no file".into());
    }
    Ok(out)
}

/// Checks a symlink target found in an archive. `link_parent` is the (sanitised) directory the
/// link itself lives in, relative to the extraction root.
///
/// Accepted targets are relative, made of some leading `..` (no more than the link's depth) and
/// then plain names only. A `..` after a plain name is refused: that name may itself be a
/// symlink, and the kernel would resolve `..` from wherever it points, not lexically. Together
/// with never writing through symlinks this keeps every link inside the extraction root.
pub(crate) fn check_symlink_target(link_parent: &Path, target: &Path) -> Result<(), String> {
    if target.as_os_str().is_empty() {
        return Err("the link target is empty".into());
    }
    let depth = link_parent
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    let mut ups = 0usize;
    let mut seen_name = false;
    for comp in target.components() {
        match comp {
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "the link target '{}' is absolute",
                    target.display()
                ))
            }
            Component::CurDir => {}
            Component::ParentDir if seen_name => {
                return Err(format!(
                    "the link target '{}' has '..' after a name",
                    target.display()
                ))
            }
            Component::ParentDir => {
                ups += 1;
                if ups > depth {
                    return Err(format!(
                        "the link target '{}' points outside the destination",
                        target.display()
                    ));
                }
            }
            Component::Normal(_) => seen_name = true,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(
            sanitize_relative(Path::new("a/./b")).unwrap(),
            Path::new("a/b")
        );
        assert!(sanitize_relative(Path::new("/etc/passwd")).is_err());
        assert!(sanitize_relative(Path::new("a/../../b")).is_err());
        assert!(sanitize_relative(Path::new("./")).is_err());
        assert!(sanitize_relative(Path::new("")).is_err());

        assert!(check_symlink_target(Path::new("a/b"), Path::new("../../c")).is_ok());
        assert!(check_symlink_target(Path::new("a/b"), Path::new("../../../c")).is_err());
        assert!(check_symlink_target(Path::new(""), Path::new("x/../..")).is_err());
        assert!(check_symlink_target(Path::new("a"), Path::new("x/..")).is_err());
        assert!(check_symlink_target(Path::new("a"), Path::new("/etc")).is_err());
        assert!(check_symlink_target(Path::new(""), Path::new("./x/y")).is_ok());
    }

    fn component() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("..".to_string()),
            Just(".".to_string()),
            Just("".to_string()),
            "[a-z.]{1,4}",
        ]
    }

    proptest! {
        /// Whatever comes in, a sanitised path is relative and never climbs.
        #[test]
        fn sanitized_paths_stay_inside(parts in prop::collection::vec(component(), 1..8), abs in any::<bool>()) {
            let mut raw = parts.join("/");
            if abs { raw.insert(0, '/'); }
            if let Ok(p) = sanitize_relative(Path::new(&raw)) {
                prop_assert!(p.is_relative());
                prop_assert!(p.components().all(|c| matches!(c, Component::Normal(_))));
                prop_assert!(!abs);
                prop_assert!(!parts.iter().any(|c| c == ".."));
            }
        }

        /// An accepted link target, resolved lexically from its directory, stays at or below the root.
        #[test]
        fn accepted_links_stay_inside(parent in prop::collection::vec("[a-z]{1,3}", 0..4),
                                      target in prop::collection::vec(component(), 1..6)) {
            let parent: PathBuf = parent.iter().collect();
            let target_s = target.join("/");
            if check_symlink_target(&parent, Path::new(&target_s)).is_ok() {
                let mut depth = parent.components().count() as i64;
                for c in Path::new(&target_s).components() {
                    match c {
                        Component::ParentDir => depth -= 1,
                        Component::Normal(_) => depth += 1,
                        _ => {}
                    }
                    prop_assert!(depth >= 0);
                }
            }
        }
    }
}
