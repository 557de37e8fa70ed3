//! Request paths with query strings, and the `filters` parameter.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986 unreserved characters is escaped in path segments and query values.
const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Image references keep their `/`, `:` and `@` in paths, as the Docker CLI sends them (the
/// daemon's routes match `/images/{name:.*}/push` on the decoded path either way).
const ESCAPE_IMAGE: &AsciiSet = &ESCAPE.remove(b'/').remove(b':').remove(b'@');

/// Percent-encodes one path segment or query value.
pub(crate) fn encode(value: &str) -> percent_encoding::PercentEncode<'_> {
    utf8_percent_encode(value, ESCAPE)
}

/// A request path under construction: `/containers/{id}/logs?follow=1&...`.
pub(crate) struct PathAndQuery {
    text: String,
    has_query: bool,
}

impl PathAndQuery {
    /// Starts from a literal path (no escaping needed).
    pub(crate) fn new(path: &str) -> PathAndQuery {
        PathAndQuery {
            text: path.to_owned(),
            has_query: false,
        }
    }

    /// Appends `/<segment>` with the segment escaped.
    pub(crate) fn segment(mut self, segment: &str) -> PathAndQuery {
        debug_assert!(!self.has_query);
        let _ = write!(self.text, "/{}", encode(segment));
        self
    }

    /// Appends `/<image reference>`, escaping all but the reference's own separators.
    pub(crate) fn image(mut self, reference: &str) -> PathAndQuery {
        debug_assert!(!self.has_query);
        let _ = write!(
            self.text,
            "/{}",
            utf8_percent_encode(reference, ESCAPE_IMAGE)
        );
        self
    }

    /// Appends a literal path suffix such as `/start`.
    pub(crate) fn literal(mut self, suffix: &str) -> PathAndQuery {
        debug_assert!(!self.has_query);
        self.text.push_str(suffix);
        self
    }

    /// Appends `key=value` (value escaped).
    pub(crate) fn param(mut self, key: &str, value: impl std::fmt::Display) -> PathAndQuery {
        self.text.push(if self.has_query { '&' } else { '?' });
        self.has_query = true;
        let value = value.to_string();
        let _ = write!(self.text, "{key}={}", encode(&value));
        self
    }

    /// Appends `key=value` when there is a value.
    pub(crate) fn opt(self, key: &str, value: Option<impl std::fmt::Display>) -> PathAndQuery {
        match value {
            Some(v) => self.param(key, v),
            None => self,
        }
    }

    /// Appends `key=1` or `key=0`.
    pub(crate) fn flag(self, key: &str, value: bool) -> PathAndQuery {
        self.param(key, if value { "1" } else { "0" })
    }

    /// Appends `filters=<json>` when the filters are not empty.
    pub(crate) fn filters(self, filters: &Filters) -> PathAndQuery {
        if filters.is_empty() {
            self
        } else {
            let json = serde_json::to_string(&filters.0).expect("a map of strings serializes");
            self.param("filters", json)
        }
    }

    pub(crate) fn into_string(self) -> String {
        self.text
    }
}

/// The `filters` parameter of list, prune and events calls: a map from filter name to accepted
/// values, e.g. `label` → `["io.berth.test=pull"]`.
///
/// ```
/// let filters = berth_docker_api::Filters::new().label("app=web").add("status", "exited");
/// assert!(!filters.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    /// No filters.
    pub fn new() -> Filters {
        Filters::default()
    }

    /// Adds a value to filter `key` (values of one key are alternatives; keys combine with AND).
    pub fn add(mut self, key: &str, value: impl Into<String>) -> Filters {
        self.0.entry(key.to_owned()).or_default().push(value.into());
        self
    }

    /// Adds a `label` filter: `key` (label present) or `key=value`.
    pub fn label(self, label: impl Into<String>) -> Filters {
        self.add("label", label)
    }

    /// Adds a `name` filter.
    pub fn name(self, name: impl Into<String>) -> Filters {
        self.add("name", name)
    }

    /// Whether no filter was added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_escaped_paths_and_queries() {
        let path = PathAndQuery::new("/images")
            .segment("127.0.0.1:5301/a/b:latest")
            .literal("/push")
            .param("tag", "v1 beta")
            .flag("force", true)
            .opt("none", None::<&str>)
            .into_string();
        assert_eq!(
            path,
            "/images/127.0.0.1%3A5301%2Fa%2Fb%3Alatest/push?tag=v1%20beta&force=1"
        );
    }

    #[test]
    fn filters_serialize_as_json_maps_of_lists() {
        let filters = Filters::new().label("a=b").label("c").name("web");
        let path = PathAndQuery::new("/containers/json")
            .filters(&filters)
            .into_string();
        let encoded = path.strip_prefix("/containers/json?filters=").unwrap();
        let json = percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .unwrap();
        assert_eq!(json, r#"{"label":["a=b","c"],"name":["web"]}"#);
        assert_eq!(
            PathAndQuery::new("/x")
                .filters(&Filters::new())
                .into_string(),
            "/x"
        );
    }
}
