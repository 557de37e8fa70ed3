//! Which media a v1 API request is written in and which its answer may be, decided in the order
//! and with the rules of Mesos's agent (`Http::api` and `_api` in its `src/slave/http.cpp`):
//!
//! 1. `Content-Type` must be present (400) and JSON, protobuf or RecordIO (415); a RecordIO
//!    request needs `Message-Content-Type` (400; JSON or protobuf, else 415), and a
//!    non-streaming one must not send it (415).
//! 2. The answer is JSON if `Accept` allows it, else protobuf, else RecordIO (406 if none);
//!    a RecordIO answer's records are JSON if `Message-Accept` allows it, else protobuf (406 if
//!    neither), and a non-streaming answer refuses a `Message-Accept` (406).
//! 3. Once the call is parsed: a streaming request or a streaming answer for a call that has
//!    none is refused (415 / 406), so a malformed or unsupported call gets its own answer first.
//!
//! Berth is lenient in one way Mesos is not: a `Content-Type` is compared without its
//! parameters and case (`application/json; charset=utf-8` is JSON), as RFC 9110 reads it.

use http::{header, HeaderMap, StatusCode};

use crate::error::ApiError;

/// Mesos's JSON media type.
pub const JSON: &str = "application/json";
/// Mesos's binary protobuf media type.
pub const PROTOBUF: &str = "application/x-protobuf";
/// Mesos's streaming media type: length-prefixed records (see [`super::recordio`]).
pub const RECORDIO: &str = "application/recordio";
/// The header naming the media type of each record of a streaming request.
pub const MESSAGE_CONTENT_TYPE: &str = "message-content-type";
/// The header naming the media types a client accepts for each record of a streaming answer.
pub const MESSAGE_ACCEPT: &str = "message-accept";

/// A media type of the v1 API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// Protobuf-JSON.
    Json,
    /// Binary protobuf, with Mesos's field numbers.
    Protobuf,
    /// A stream of records, each in the message media type.
    RecordIo,
}

impl Media {
    /// The media type's name, as sent in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Media::Json => JSON,
            Media::Protobuf => PROTOBUF,
            Media::RecordIo => RECORDIO,
        }
    }
}

/// The media of one request and its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaTypes {
    /// The request body's media.
    pub content: Media,
    /// The answer's media.
    pub accept: Media,
    /// Each request record's media, for a streaming request.
    pub message_content: Option<Media>,
    /// Each answer record's media, for a streaming answer.
    pub message_accept: Option<Media>,
}

impl MediaTypes {
    /// The medium of each record of a streaming answer. As Mesos, a streaming answer is
    /// RecordIO-framed whatever `Accept` chose; its records are in `Message-Accept`'s medium
    /// for `application/recordio`, else in `Accept`'s.
    pub fn record_media(&self) -> Media {
        match self.accept {
            Media::RecordIo => self.message_accept.unwrap_or(Media::Json),
            other => other,
        }
    }
}

/// Decides a request's [`MediaTypes`] from its headers, or refuses it as Mesos does (steps 1
/// and 2 of the module's list).
///
/// ```
/// use berth::api::negotiate::{media_types, Media};
/// use http::{header, HeaderMap, HeaderValue};
///
/// let mut h = HeaderMap::new();
/// h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
/// h.insert(header::ACCEPT, HeaderValue::from_static("application/x-protobuf"));
/// let m = media_types(&h).unwrap();
/// assert_eq!((m.content, m.accept), (Media::Protobuf, Media::Protobuf));
/// // No Accept: JSON, whatever the request was written in.
/// h.remove(header::ACCEPT);
/// assert_eq!(media_types(&h).unwrap().accept, Media::Json);
/// ```
pub fn media_types(headers: &HeaderMap) -> Result<MediaTypes, ApiError> {
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::bad_request(format!(
            "Expecting 'Content-Type' to be present: send the Call as '{JSON}' or '{PROTOBUF}'"
        )));
    };
    let content = match content_media(content_type.to_str().unwrap_or("")) {
        Some(m) => m,
        None => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported Content-Type '{}': expecting {JSON} or {PROTOBUF} or {RECORDIO}",
                    String::from_utf8_lossy(content_type.as_bytes())
                ),
            ))
        }
    };
    let message_content = match (content, headers.get(MESSAGE_CONTENT_TYPE)) {
        (Media::RecordIo, None) => {
            return Err(ApiError::bad_request(format!(
                "Expecting 'Message-Content-Type' to be set for streaming requests ({JSON} or {PROTOBUF})"
            )))
        }
        (Media::RecordIo, Some(v)) => match content_media(v.to_str().unwrap_or("")) {
            Some(m @ (Media::Json | Media::Protobuf)) => Some(m),
            _ => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "unsupported Message-Content-Type '{}': expecting {JSON} or {PROTOBUF}",
                        String::from_utf8_lossy(v.as_bytes())
                    ),
                ))
            }
        },
        (_, Some(_)) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expecting 'Message-Content-Type' to be not set for non-streaming requests",
            ))
        }
        (_, None) => None,
    };
    let accept_header = header_text(headers, header::ACCEPT.as_str());
    let accept = [Media::Json, Media::Protobuf, Media::RecordIo]
        .into_iter()
        .find(|m| accepts(accept_header.as_deref(), m.as_str()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "cannot answer in '{}': expecting 'Accept' to allow {JSON} or {PROTOBUF} or {RECORDIO}",
                    accept_header.as_deref().unwrap_or_default()
                ),
            )
        })?;
    let message_accept_header = header_text(headers, MESSAGE_ACCEPT);
    let message_accept = if accept == Media::RecordIo {
        let m = [Media::Json, Media::Protobuf]
            .into_iter()
            .find(|m| accepts(message_accept_header.as_deref(), m.as_str()))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_ACCEPTABLE,
                    format!("Expecting 'Message-Accept' to allow {JSON} or {PROTOBUF}"),
                )
            })?;
        Some(m)
    } else if message_accept_header.is_some() {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "Expecting 'Message-Accept' to be not set for non-streaming responses",
        ));
    } else {
        None
    };
    Ok(MediaTypes {
        content,
        accept,
        message_content,
        message_accept,
    })
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn content_media(value: &str) -> Option<Media> {
    let m = value.split(';').next().unwrap_or("").trim();
    [Media::Json, Media::Protobuf, Media::RecordIo]
        .into_iter()
        .find(|media| m.eq_ignore_ascii_case(media.as_str()))
}

/// Whether an `Accept`-style header value allows `media`, as Mesos's libprocess decides it: no
/// header allows everything; otherwise the most specific range that matches (`type/subtype`,
/// then `type/*`, then `*/*`) decides, and it allows unless its `q` is 0 or not a number.
pub fn accepts(header: Option<&str>, media: &str) -> bool {
    let Some(header) = header else {
        return true;
    };
    let Some((kind, _)) = media.split_once('/') else {
        return false;
    };
    let header: String = header
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\n'))
        .collect();
    for candidate in [media.to_owned(), format!("{kind}/*"), "*/*".to_owned()] {
        for range in header.split(',').filter(|r| !r.is_empty()) {
            let mut params = range.split(';');
            let name = params.next().unwrap_or("");
            if !name.eq_ignore_ascii_case(&candidate) {
                continue;
            }
            let q: Vec<&str> = params
                .filter_map(|p| p.split_once('='))
                .filter(|(k, _)| *k == "q")
                .map(|(_, v)| v)
                .collect();
            return match q.as_slice() {
                [q] => q.parse::<f64>().is_ok_and(|q| q > 0.0),
                _ => true,
            };
        }
    }
    false
}

/// The call types whose answer is a stream (Mesos's `_api`, and Berth's `SUBSCRIBE`).
pub const STREAMING_ANSWERS: &[&str] = &[
    "ATTACH_CONTAINER_OUTPUT",
    "LAUNCH_NESTED_CONTAINER_SESSION",
    "SUBSCRIBE",
];
/// The call type whose request is a stream.
pub const STREAMING_REQUEST: &str = "ATTACH_CONTAINER_INPUT";

/// Step 3 of the module's list, once the call's type is known: a 415 for a streaming request of
/// a call that has none (or the reverse), a 406 for a streaming answer to a call that has none.
pub fn check_call(media: &MediaTypes, call_type: &str) -> Result<(), ApiError> {
    let streaming_request = media.content == Media::RecordIo;
    if streaming_request && call_type != STREAMING_REQUEST {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Streaming 'Content-Type' {RECORDIO} is not supported for {call_type} call: send it as {JSON} or {PROTOBUF}"
            ),
        ));
    }
    if !streaming_request && call_type == STREAMING_REQUEST {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Expecting 'Content-Type' to be {RECORDIO} for {call_type} call"),
        ));
    }
    if media.accept == Media::RecordIo && !STREAMING_ANSWERS.contains(&call_type) {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "Streaming response is not supported for {call_type} call: 'Accept: {RECORDIO}' is for streaming calls; accept {JSON} or {PROTOBUF}"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn accept_follows_libprocess() {
        assert!(accepts(None, JSON));
        for (header, media, want) in [
            ("application/json", JSON, true),
            ("Application/JSON", JSON, true),
            ("application/json", PROTOBUF, false),
            ("*/*", PROTOBUF, true),
            ("application/*", PROTOBUF, true),
            ("text/*", PROTOBUF, false),
            ("application/json;q=0", JSON, false),
            ("application/json; q=0.0, */*", JSON, false),
            ("application/json;q=0, */*", PROTOBUF, true),
            ("*/*;q=0", JSON, false),
            ("application/json;q=bogus", JSON, false),
            ("application/json;level=1", JSON, true),
            ("application/x-protobuf;q=0.5", PROTOBUF, true),
        ] {
            assert_eq!(accepts(Some(header), media), want, "{header} / {media}");
        }
    }

    #[test]
    fn media_types_in_mesos_order() {
        let m = |p: &[(&str, &str)]| media_types(&h(p));
        let e = m(&[]).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("Content-Type"), "{}", e.message);
        assert_eq!(
            m(&[("content-type", "text/plain")]).unwrap_err().status,
            415
        );
        let ok = m(&[("content-type", "application/json; charset=utf-8")]).unwrap();
        assert_eq!((ok.content, ok.accept), (Media::Json, Media::Json));
        // JSON first, then protobuf, then RecordIO.
        let ok = m(&[
            ("content-type", PROTOBUF),
            ("accept", "application/x-protobuf, application/json"),
        ])
        .unwrap();
        assert_eq!((ok.content, ok.accept), (Media::Protobuf, Media::Json));
        let ok = m(&[("content-type", JSON), ("accept", "application/x-protobuf")]).unwrap();
        assert_eq!(ok.accept, Media::Protobuf);
        assert_eq!(
            m(&[("content-type", JSON), ("accept", "text/html")])
                .unwrap_err()
                .status,
            406
        );
        // Streaming answers: Message-Accept, JSON unless it says otherwise.
        let ok = m(&[("content-type", JSON), ("accept", RECORDIO)]).unwrap();
        assert_eq!(ok.message_accept, Some(Media::Json));
        let ok = m(&[
            ("content-type", JSON),
            ("accept", RECORDIO),
            ("message-accept", PROTOBUF),
        ])
        .unwrap();
        assert_eq!(ok.message_accept, Some(Media::Protobuf));
        let e = m(&[
            ("content-type", JSON),
            ("accept", RECORDIO),
            ("message-accept", "text/html"),
        ])
        .unwrap_err();
        assert!(e.status == 406 && e.message.contains("Message-Accept"));
        let e = m(&[("content-type", JSON), ("message-accept", JSON)]).unwrap_err();
        assert!(e.status == 406 && e.message.contains("non-streaming"));
        // Streaming requests: Message-Content-Type required, and only for them.
        let e = m(&[("content-type", RECORDIO)]).unwrap_err();
        assert!(e.status == 400 && e.message.contains("Message-Content-Type"));
        let e = m(&[
            ("content-type", RECORDIO),
            ("message-content-type", "text/x"),
        ])
        .unwrap_err();
        assert_eq!(e.status, 415);
        let ok = m(&[
            ("content-type", RECORDIO),
            ("message-content-type", PROTOBUF),
        ])
        .unwrap();
        assert_eq!(ok.message_content, Some(Media::Protobuf));
        let e = m(&[("content-type", JSON), ("message-content-type", JSON)]).unwrap_err();
        assert_eq!(e.status, 415);
    }

    #[test]
    fn the_call_decides_streaming() {
        let media = |content, accept| MediaTypes {
            content,
            accept,
            message_content: None,
            message_accept: None,
        };
        check_call(&media(Media::Json, Media::Json), "GET_HEALTH").unwrap();
        check_call(&media(Media::Protobuf, Media::Protobuf), "GET_HEALTH").unwrap();
        let e = check_call(&media(Media::Json, Media::RecordIo), "GET_HEALTH").unwrap_err();
        assert!(e.status == 406 && e.message.contains("GET_HEALTH"));
        check_call(
            &media(Media::Json, Media::RecordIo),
            "ATTACH_CONTAINER_OUTPUT",
        )
        .unwrap();
        let e = check_call(&media(Media::RecordIo, Media::Json), "GET_HEALTH").unwrap_err();
        assert!(e.status == 415 && e.message.contains("GET_HEALTH"));
        let e = check_call(&media(Media::Json, Media::Json), STREAMING_REQUEST).unwrap_err();
        assert_eq!(e.status, 415);
    }
}
