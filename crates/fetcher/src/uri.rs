//! What to fetch ([`UriSpec`]) and where it comes from ([`Source`]).

use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::checksum::Checksum;
use crate::error::{FetchError, Result};
use crate::paths::sanitize_relative;

/// One URI to fetch into a sandbox, with Mesos's `CommandInfo.URI` fields plus a checksum.
///
/// Deserialises from the JSON used by `berth-fetch --info`:
/// `{"value": "https://host/app.tar.gz", "cache": true, "checksum": "sha256:…"}`; missing fields
/// take their defaults (`extract` is true, the rest false or absent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UriSpec {
    /// The URI: `http://`, `https://`, `file://` (also `file://localhost/`), an absolute path, or
    /// a path relative to the frameworks home. Leading whitespace is ignored.
    pub value: String,
    /// Make the fetched file executable (mode 755). Turns extraction off.
    #[serde(default)]
    pub executable: bool,
    /// Unpack archives recognised by their extension (default true).
    #[serde(default = "default_true")]
    pub extract: bool,
    /// Keep the download in the fetcher's cache and serve later fetches from it.
    #[serde(default)]
    pub cache: bool,
    /// Name of the result inside the sandbox (relative; subdirectories are created). Defaults
    /// to the URI's last path segment without its query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_file: Option<String>,
    /// Expected digest of the bytes, e.g. `sha256:<64 hex>`; a mismatch fails the fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
}

fn default_true() -> bool {
    true
}

impl UriSpec {
    /// A spec with default fields: extract on, executable and cache off.
    pub fn new(value: impl Into<String>) -> Self {
        UriSpec {
            value: value.into(),
            executable: false,
            extract: true,
            cache: false,
            output_file: None,
            checksum: None,
        }
    }

    /// Sets `executable`.
    pub fn executable(mut self, on: bool) -> Self {
        self.executable = on;
        self
    }

    /// Sets `extract`.
    pub fn extract(mut self, on: bool) -> Self {
        self.extract = on;
        self
    }

    /// Sets `cache`.
    pub fn cache(mut self, on: bool) -> Self {
        self.cache = on;
        self
    }

    /// Sets `output_file`.
    pub fn output_file(mut self, path: impl Into<String>) -> Self {
        self.output_file = Some(path.into());
        self
    }

    /// Sets `checksum`.
    pub fn checksum(mut self, checksum: Checksum) -> Self {
        self.checksum = Some(checksum);
        self
    }
}

/// Where the bytes come from, once the URI string is understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// An `http://` or `https://` URL.
    Http(Url),
    /// A local file.
    File(PathBuf),
}

impl Source {
    /// Parses a URI value. `frameworks_home` is where relative paths are resolved.
    pub(crate) fn parse(value: &str, frameworks_home: Option<&Path>) -> Result<Source> {
        let v = value.trim_start();
        let malformed = |reason: &str| FetchError::MalformedUri {
            uri: value.to_string(),
            reason: reason.to_string(),
        };
        if v.is_empty() {
            return Err(malformed("it is empty"));
        }
        if v.contains('\0') {
            return Err(malformed("it contains a NUL byte"));
        }
        if let Some((scheme, rest)) = v.split_once("://") {
            return match scheme.to_ascii_lowercase().as_str() {
                "http" | "https" => {
                    if !rest.contains('/') {
                        return Err(malformed("missing path"));
                    }
                    let url = Url::parse(v).map_err(|e| malformed(&e.to_string()))?;
                    if url.host_str().is_none_or(str::is_empty) {
                        return Err(malformed("missing host"));
                    }
                    Ok(Source::Http(url))
                }
                "file" => {
                    let path = rest.strip_prefix("localhost").unwrap_or(rest);
                    if !path.starts_with('/') {
                        return Err(malformed(
                            "a file URI must be local: file:///path or file://localhost/path",
                        ));
                    }
                    let bytes: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
                    Ok(Source::File(PathBuf::from(std::ffi::OsString::from_vec(
                        bytes,
                    ))))
                }
                _ => Err(FetchError::UnsupportedScheme {
                    uri: value.to_string(),
                    scheme: scheme.to_string(),
                }),
            };
        }
        let p = Path::new(v);
        if p.is_absolute() {
            return Ok(Source::File(p.to_path_buf()));
        }
        match frameworks_home {
            Some(home) => Ok(Source::File(home.join(p))),
            None => Err(FetchError::RelativePathWithoutHome {
                path: v.to_string(),
            }),
        }
    }

    /// The source's own file name: the URL's last path segment (decoded, without query) or
    /// the local file's name.
    pub(crate) fn basename(&self) -> Option<String> {
        let name = match self {
            Source::Http(url) => {
                let seg = url.path_segments()?.next_back()?;
                let bytes: Vec<u8> = percent_encoding::percent_decode_str(seg).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Source::File(p) => p.file_name()?.to_string_lossy().into_owned(),
        };
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            None
        } else {
            Some(name)
        }
    }

    /// A stable text form, used in cache keys.
    pub(crate) fn canonical(&self) -> String {
        match self {
            Source::Http(url) => url.to_string(),
            Source::File(p) => format!("file://{}", p.display()),
        }
    }
}

/// Where a URI's result goes inside the sandbox: a sanitised relative path.
pub(crate) fn output_path(spec: &UriSpec, source: &Source) -> Result<PathBuf> {
    match &spec.output_file {
        Some(out) => {
            sanitize_relative(Path::new(out)).map_err(|reason| FetchError::InvalidOutputFile {
                uri: spec.value.clone(),
                output_file: out.clone(),
                reason: format!("{reason}; it must stay within the sandbox directory"),
            })
        }
        None => source
            .basename()
            .map(PathBuf::from)
            .ok_or_else(|| FetchError::MalformedUri {
                uri: spec.value.clone(),
                reason: "no file name in its path; set output_file".into(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schemes() {
        let s = Source::parse("  http://h:8/a/b.tgz?x=1", None).unwrap();
        assert_eq!(s.basename().unwrap(), "b.tgz");
        assert_eq!(
            Source::parse("file://localhost/tmp/x", None).unwrap(),
            Source::File("/tmp/x".into())
        );
        assert_eq!(
            Source::parse("file:///tmp/a%20b", None).unwrap(),
            Source::File("/tmp/a b".into())
        );
        assert_eq!(
            Source::parse("/abs", None).unwrap(),
            Source::File("/abs".into())
        );
        assert_eq!(
            Source::parse("rel/x", Some(Path::new("/home"))).unwrap(),
            Source::File("/home/rel/x".into())
        );
        let e = Source::parse("rel/x", None).unwrap_err().to_string();
        assert!(e.contains("frameworks home"), "{e}");
        let e = Source::parse("hdfs://nn/x", None).unwrap_err().to_string();
        assert!(
            e.contains("'hdfs'") && e.contains("http://, https://, file://"),
            "{e}"
        );
        let e = Source::parse("http://host", None).unwrap_err().to_string();
        assert!(e.contains("missing path"), "{e}");
        let e = Source::parse("file://otherhost/x", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be local"), "{e}");
    }

    #[test]
    fn output_paths() {
        let src = Source::parse("http://h/d/f.txt?q", None).unwrap();
        assert_eq!(
            output_path(&UriSpec::new("x"), &src).unwrap(),
            Path::new("f.txt")
        );
        let spec = UriSpec::new("x").output_file("/etc/x");
        assert!(output_path(&spec, &src)
            .unwrap_err()
            .to_string()
            .contains("absolute"));
        let spec = UriSpec::new("x").output_file("a/../../x");
        assert!(output_path(&spec, &src)
            .unwrap_err()
            .to_string()
            .contains(".."));
        let root = Source::parse("http://h/", None).unwrap();
        assert!(output_path(&UriSpec::new("http://h/"), &root).is_err());
    }

    #[test]
    fn json_defaults() {
        let s: UriSpec = serde_json::from_str(r#"{"value":"/x"}"#).unwrap();
        assert_eq!(s, UriSpec::new("/x"));
        assert!(s.extract);
        assert!(serde_json::from_str::<UriSpec>(r#"{"value":"/x","extrct":false}"#).is_err());
    }
}
