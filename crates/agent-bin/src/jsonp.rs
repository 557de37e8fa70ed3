//! `?jsonp=<callback>` on the JSON endpoints where Mesos has it: the answer becomes
//! `callback(<json>)` with `Content-Type: text/javascript`, as Mesos writes it (no trailing
//! semicolon). Mesos reflects the name as given; Berth accepts only a JavaScript name path
//! (`cb`, `angular.callbacks._0`), because a caller-chosen string written before a JSON body
//! served as script is a cross-site scripting vector.

use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;

use crate::error::ApiError;
use crate::http::body::{full, Body};

/// Longest callback name accepted.
pub const MAX_CALLBACK: usize = 128;

/// A validated callback name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback(String);

impl Callback {
    /// Validates the `jsonp` query parameter: dot-separated identifiers of ASCII letters,
    /// digits, `_` and `$`, none starting with a digit, at most [`MAX_CALLBACK`] bytes.
    pub fn parse(name: &str) -> Result<Callback, ApiError> {
        let refuse = |why: &str| {
            ApiError::bad_request(format!(
                "query parameter 'jsonp': {why}; a callback is a JavaScript name such as 'cb' or 'angular.callbacks._0'"
            ))
        };
        if name.is_empty() {
            return Err(refuse("empty"));
        }
        if name.len() > MAX_CALLBACK {
            return Err(refuse(&format!("longer than {MAX_CALLBACK} bytes")));
        }
        for part in name.split('.') {
            let mut chars = part.chars();
            let Some(first) = chars.next() else {
                return Err(refuse("has an empty name between dots"));
            };
            let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
            if first.is_ascii_digit() || !ident(first) || !chars.all(ident) {
                return Err(refuse(
                    "may hold only ASCII letters, digits, '_', '$' and '.', not starting with a digit",
                ));
            }
        }
        Ok(Callback(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `callback(body)`.
pub fn wrap_bytes(cb: &Callback, json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cb.0.len() + json.len() + 2);
    out.extend_from_slice(cb.0.as_bytes());
    out.push(b'(');
    out.extend_from_slice(json);
    out.push(b')');
    out
}

/// Wraps a 200 JSON answer; anything else (errors, other types) is passed through, as Mesos
/// wraps only its OK answers.
pub async fn wrap(cb: Option<&Callback>, response: Response<Body>) -> Response<Body> {
    let Some(cb) = cb else {
        return response;
    };
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::OK || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return crate::http::body::error(&ApiError::internal(format!(
                "failed to build the answer: {e}"
            )))
        }
    };
    let wrapped = wrap_bytes(cb, &bytes);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript"),
    );
    parts.headers.insert(
        header::HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, full(wrapped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_names_are_javascript_names_only() {
        for ok in ["cb", "angular.callbacks._0", "$x", "_a1.b$"] {
            assert_eq!(Callback::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "1cb",
            "a..b",
            "a.",
            "alert(1)//",
            "cb;alert(1)",
            "<script>",
            "a b",
            "é",
            &"a".repeat(129),
        ] {
            let e = Callback::parse(bad).unwrap_err();
            assert!(
                e.status == 400 && e.message.contains("'jsonp'"),
                "{bad}: {e}"
            );
        }
    }

    #[tokio::test]
    async fn only_ok_json_answers_are_wrapped() {
        let cb = Callback::parse("cb").unwrap();
        let r = wrap(
            Some(&cb),
            crate::http::body::json(StatusCode::OK, &serde_json::json!({"a": 1})),
        )
        .await;
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/javascript");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"cb({\"a\":1})");
        let e = crate::http::body::error(&ApiError::not_found("nope"));
        let r = wrap(Some(&cb), e).await;
        assert_eq!(r.status(), 404);
        assert!(r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
    }
}
