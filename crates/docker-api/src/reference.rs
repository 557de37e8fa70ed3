//! Image references: `[registry/]repository[:tag][@digest]`.

use std::fmt;

use crate::error::{Error, Result};

/// A parsed image reference such as `127.0.0.1:5301/berth-test/busybox:latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// The registry host (and port) when the reference names one, e.g. `127.0.0.1:5301`.
    pub registry: Option<String>,
    /// The repository path, e.g. `berth-test/busybox`.
    pub repository: String,
    /// The tag, e.g. `latest`.
    pub tag: Option<String>,
    /// The digest, e.g. `sha256:...`.
    pub digest: Option<String>,
}

impl ImageReference {
    /// Parses a reference. The first path component is a registry when it contains a `.` or a
    /// `:`, or is `localhost` (Docker's rule).
    pub fn parse(reference: &str) -> Result<ImageReference> {
        let invalid = |reason: &str| Error::InvalidInput {
            what: "image reference",
            value: reference.to_owned(),
            reason: reason.to_owned(),
        };
        if reference.is_empty() {
            return Err(invalid("it is empty"));
        }
        if reference.chars().any(char::is_whitespace) {
            return Err(invalid("it contains whitespace"));
        }
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) if digest.contains(':') => (name, Some(digest.to_owned())),
            Some(_) => return Err(invalid("a digest must look like sha256:<hex>")),
            None => (reference, None),
        };
        // A tag is after the last ':' that follows the last '/' (a registry port comes before one).
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &name[last_slash + i + 1..];
                if tag.is_empty() {
                    return Err(invalid("the tag after ':' is empty"));
                }
                (&name[..last_slash + i], Some(tag.to_owned()))
            }
            None => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first.to_owned()), rest)
            }
            _ => (None, name),
        };
        if repository.is_empty() || repository.split('/').any(str::is_empty) {
            return Err(invalid(
                "the repository name is empty or has an empty path component",
            ));
        }
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid("repository names must be lowercase"));
        }
        Ok(ImageReference {
            registry,
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// The registry for messages: the named one, or "the daemon's default registry".
    pub fn registry_display(&self) -> String {
        self.registry
            .clone()
            .unwrap_or_else(|| "the daemon's default registry".to_owned())
    }

    /// `registry/repository` without tag or digest (the `fromImage` of a pull).
    pub fn name(&self) -> String {
        match &self.registry {
            Some(r) => format!("{r}/{}", self.repository),
            None => self.repository.clone(),
        }
    }

    /// The digest, else the tag, else `latest`: what a pull of this reference fetches.
    pub fn tag_or_digest(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_registry_repository_tag() {
        let r = ImageReference::parse("127.0.0.1:5301/berth-test/busybox:latest").unwrap();
        assert_eq!(r.registry.as_deref(), Some("127.0.0.1:5301"));
        assert_eq!(r.repository, "berth-test/busybox");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.to_string(), "127.0.0.1:5301/berth-test/busybox:latest");

        let r = ImageReference::parse("busybox").unwrap();
        assert_eq!(
            (
                r.registry.as_deref(),
                r.repository.as_str(),
                r.tag_or_digest()
            ),
            (None, "busybox", "latest")
        );
        assert_eq!(r.registry_display(), "the daemon's default registry");

        let r = ImageReference::parse("localhost/a").unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost"));

        let r = ImageReference::parse("registry:5000/a").unwrap();
        assert_eq!(
            (r.registry.as_deref(), r.tag.as_deref()),
            (Some("registry:5000"), None)
        );
    }

    #[test]
    fn digests() {
        let r = ImageReference::parse("example.com/a/b@sha256:abcd").unwrap();
        assert_eq!(r.digest.as_deref(), Some("sha256:abcd"));
        assert_eq!(r.tag_or_digest(), "sha256:abcd");
        assert_eq!(r.name(), "example.com/a/b");
    }

    #[test]
    fn rejects_malformed_references() {
        for bad in ["", "a b", "Upper/case", "x:", "a//b", "/a", "a@nodigest"] {
            let err = ImageReference::parse(bad).unwrap_err();
            assert!(err.to_string().contains("image reference"), "{bad}: {err}");
        }
    }
}
