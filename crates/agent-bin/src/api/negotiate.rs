//! Which answer a v1 API request accepts, decided the way Mesos's agent decides it: the
//! `Accept` header is read before the call, but a streaming answer (`application/recordio`) is
//! refused only once the call is known, for a call that has no streaming answer.

use http::{header, HeaderMap, StatusCode};

use crate::error::ApiError;

/// Mesos's streaming media type.
pub const RECORDIO: &str = "application/recordio";

/// Whether `Accept` allows only a streaming (RecordIO) answer: it names `application/recordio`
/// and nothing JSON can satisfy. Mesos picks JSON whenever `Accept` allows it, so
/// `application/recordio, application/json` is a JSON request.
pub fn wants_stream_only(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut recordio = false;
    for range in accept.split(',') {
        let m = range.split(';').next().unwrap_or("").trim();
        if m.is_empty()
            || m == "*/*"
            || m == "application/*"
            || m.eq_ignore_ascii_case("application/json")
        {
            return false;
        }
        recordio |= m.eq_ignore_ascii_case(RECORDIO);
    }
    recordio
}

/// The answer to a call of `call_type` (one Berth supports; none of them streams) sent with
/// `Accept` allowing only RecordIO: 406, after the call was parsed, as Mesos checks it (its
/// agent's `_api`: only `ATTACH_CONTAINER_OUTPUT` and `LAUNCH_NESTED_CONTAINER_SESSION` stream,
/// and Berth answers those "not supported" when it parses them).
pub fn refuse_stream(call_type: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        format!(
            "{call_type} has no streaming answer: 'Accept: {RECORDIO}' is for streaming calls; send 'Accept: application/json'"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn accept(v: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = v {
            h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_a_recordio_only_accept_asks_for_a_stream() {
        assert!(wants_stream_only(&accept(Some("application/recordio"))));
        assert!(wants_stream_only(&accept(Some(
            "Application/RecordIO; q=1"
        ))));
        for json in [
            None,
            Some("application/json"),
            Some("application/recordio, application/json"),
            Some("application/json, application/recordio"),
            Some("*/*"),
            Some("application/recordio, */*"),
            Some("application/*"),
        ] {
            assert!(!wants_stream_only(&accept(json)), "{json:?}");
        }
        // Not a stream request either: refused earlier (406, nothing Berth can answer in).
        assert!(!wants_stream_only(&accept(Some("text/html"))));
        let e = refuse_stream("GET_HEALTH");
        assert_eq!(e.status, 406);
        assert!(e.message.contains("GET_HEALTH") && e.message.contains("application/json"));
    }
}
