//! Request routing and the checks that need no agent: method, path, query parameters, content
//! type, and the declared body size.

use http::{header, HeaderMap, Method, StatusCode};

use crate::error::ApiError;
use crate::jsonp::Callback;

/// Largest request body accepted (larger ones get 413).
pub const MAX_BODY: usize = 1 << 20;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /api/v1`.
    Api,
    /// `GET /health` (no authentication).
    Health,
    /// `GET /version`.
    Version {
        /// `?jsonp=`.
        jsonp: Option<Callback>,
    },
    /// `GET /state` (Mesos's agent state).
    State {
        /// `?jsonp=`.
        jsonp: Option<Callback>,
    },
    /// `GET /flags`.
    Flags {
        /// `?jsonp=`.
        jsonp: Option<Callback>,
    },
    /// `GET /containers[?container_id=]`.
    Containers {
        /// Only this container.
        container_id: Option<String>,
        /// `?jsonp=`.
        jsonp: Option<Callback>,
    },
    /// `GET /monitor/statistics`.
    MonitorStatistics {
        /// `?jsonp=`.
        jsonp: Option<Callback>,
    },
    /// `GET /metrics/snapshot`.
    MetricsSnapshot {
        /// `?jsonp=`.
        jsonp: Option<Callback>,
    },
    /// `GET /metrics` (Prometheus text).
    Prometheus,
    /// `GET /files/browse?path=`.
    FilesBrowse {
        /// Virtual path.
        path: String,
        /// `?jsonp=`.
        jsonp: Option<Callback>,
    },
    /// `GET /files/read?path=&offset=&length=`.
    FilesRead {
        /// Virtual path.
        path: String,
        /// Offset; -1 (also when absent, as in Mesos) asks for the size only.
        offset: i64,
        /// Bytes wanted; `None` (absent, or -1 as in Mesos) reads to the end, capped.
        length: Option<u64>,
        /// `?jsonp=`.
        jsonp: Option<Callback>,
    },
    /// `GET /files/download?path=`.
    FilesDownload {
        /// Virtual path.
        path: String,
    },
}

impl Route {
    /// Whether the route can be protected (all but `/health`; whether it is depends on its
    /// realm's `--authenticate-http-*` flag). The server checks credentials before routing, by
    /// path ([`super::server::is_public`]), so that a caller without them learns nothing of the
    /// routes; this says the same per route.
    pub fn needs_auth(&self) -> bool {
        !matches!(self, Route::Health)
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Route::Api => "api",
            Route::Health => "health",
            Route::Version { .. } => "version",
            Route::State { .. } => "state",
            Route::Flags { .. } => "flags",
            Route::Containers { .. } => "containers",
            Route::MonitorStatistics { .. } => "monitor_statistics",
            Route::MetricsSnapshot { .. } => "metrics_snapshot",
            Route::Prometheus => "metrics",
            Route::FilesBrowse { .. } => "files_browse",
            Route::FilesRead { .. } => "files_read",
            Route::FilesDownload { .. } => "files_download",
        }
    }

    /// The `?jsonp=` callback of a route that has one (the JSON endpoints Mesos wraps).
    pub fn jsonp(&self) -> Option<&Callback> {
        match self {
            Route::Version { jsonp }
            | Route::State { jsonp }
            | Route::Flags { jsonp }
            | Route::Containers { jsonp, .. }
            | Route::MonitorStatistics { jsonp }
            | Route::MetricsSnapshot { jsonp }
            | Route::FilesBrowse { jsonp, .. }
            | Route::FilesRead { jsonp, .. } => jsonp.as_ref(),
            _ => None,
        }
    }
}

/// A routing failure: the status, the message, and for 405 the allowed method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Status and message.
    pub error: ApiError,
    /// The `Allow` header for a 405.
    pub allow: Option<&'static str>,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Refused {
        Refused { error, allow: None }
    }
}

fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn jsonp(params: &[(String, String)]) -> Result<Option<Callback>, ApiError> {
    param(params, "jsonp").map(Callback::parse).transpose()
}

/// A parameter that must be given and not empty (Mesos answers 400 to an empty `path` too).
fn required(params: &[(String, String)], name: &str) -> Result<String, ApiError> {
    match param(params, name) {
        None => Err(ApiError::bad_request(format!(
            "missing query parameter '{name}'"
        ))),
        Some("") => Err(ApiError::bad_request(format!(
            "query parameter '{name}' is empty"
        ))),
        Some(v) => Ok(v.to_owned()),
    }
}

/// Builds a route from the query parameters.
type RouteFn = fn(&[(String, String)]) -> Result<Route, ApiError>;

/// Resolves method + path (+ query) to a [`Route`]: 404 for unknown paths, 405 for a wrong
/// method, 400 for bad query parameters.
pub fn resolve(method: &Method, path: &str, query: Option<&str>) -> Result<Route, Refused> {
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let (expected, route): (Method, RouteFn) = match path {
        "/api/v1" => (Method::POST, |_| Ok(Route::Api)),
        "/health" => (Method::GET, |_| Ok(Route::Health)),
        "/version" => (Method::GET, |p| Ok(Route::Version { jsonp: jsonp(p)? })),
        "/state" => (Method::GET, |p| Ok(Route::State { jsonp: jsonp(p)? })),
        "/flags" => (Method::GET, |p| Ok(Route::Flags { jsonp: jsonp(p)? })),
        "/containers" => (Method::GET, |p| {
            // Berth's containers belong to no framework or executor, so of Mesos's filters
            // only `container_id` can select anything; the others are refused by name.
            for unsupported in ["framework_id", "executor_id"] {
                if param(p, unsupported).is_some() {
                    return Err(ApiError::bad_request(format!(
                        "query parameter '{unsupported}': Berth's containers are standalone (no framework or executor); filter by 'container_id'"
                    )));
                }
            }
            Ok(Route::Containers {
                container_id: param(p, "container_id").map(str::to_owned),
                jsonp: jsonp(p)?,
            })
        }),
        "/monitor/statistics" => (Method::GET, |p| {
            Ok(Route::MonitorStatistics { jsonp: jsonp(p)? })
        }),
        "/metrics/snapshot" => (Method::GET, |p| {
            Ok(Route::MetricsSnapshot { jsonp: jsonp(p)? })
        }),
        "/metrics" => (Method::GET, |_| Ok(Route::Prometheus)),
        "/files/browse" => (Method::GET, |p| {
            Ok(Route::FilesBrowse {
                path: required(p, "path")?,
                jsonp: jsonp(p)?,
            })
        }),
        "/files/download" => (Method::GET, |p| {
            Ok(Route::FilesDownload {
                path: required(p, "path")?,
            })
        }),
        "/files/read" => (Method::GET, |p| {
            let path = required(p, "path")?;
            // As Mesos: no offset means -1, which answers the file's size and no data.
            let offset = match param(p, "offset") {
                None => -1,
                Some(o) => match o.parse::<i64>() {
                    Ok(n) if n >= -1 => n,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "query parameter 'offset': \"{o}\" is not an offset (a number >= 0, or -1 for the size)"
                        )))
                    }
                },
            };
            // As Mesos: -1 (its web UI's log pailer sends it) is the same as no length.
            let length = match param(p, "length") {
                None => None,
                Some(l) => match l.parse::<i64>() {
                    Ok(-1) => None,
                    Ok(n) if n >= 0 => Some(n as u64),
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "query parameter 'length': \"{l}\" is not a length (a number >= 0, or -1 for up to the end)"
                        )))
                    }
                },
            };
            Ok(Route::FilesRead {
                path,
                offset,
                length,
                jsonp: jsonp(p)?,
            })
        }),
        other => return Err(ApiError::not_found(format!("no endpoint at '{other}'")).into()),
    };
    // HEAD is answered like GET without a body (hyper drops it).
    let allowed = *method == expected || (expected == Method::GET && *method == Method::HEAD);
    if !allowed {
        return Err(Refused {
            error: ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("'{path}' expects {expected}, not {method}"),
            ),
            allow: Some(if expected == Method::POST {
                "POST"
            } else {
                "GET, HEAD"
            }),
        });
    }
    Ok(route(&query_params(query))?)
}

/// Checks an API request's headers before its body is read: the media of the request and its
/// answer, as Mesos decides them ([`crate::api::negotiate::media_types`]: 400, 415 or 406), and
/// a declared length within [`MAX_BODY`] (413).
pub fn check_api_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    crate::api::negotiate::media_types(headers)?;
    if let Some(len) = headers.get(header::CONTENT_LENGTH) {
        let len = len.to_str().ok().and_then(|l| l.parse::<u64>().ok());
        match len {
            Some(l) if l > MAX_BODY as u64 => return Err(too_large()),
            Some(_) => {}
            None => return Err(ApiError::bad_request("invalid Content-Length header")),
        }
    }
    Ok(())
}

/// The 413 answer.
pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than the limit of {MAX_BODY} bytes (1 MiB)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn paths_and_methods_resolve() {
        assert_eq!(resolve(&Method::POST, "/api/v1", None).unwrap(), Route::Api);
        assert_eq!(
            resolve(&Method::POST, "/api/v1/", None).unwrap(),
            Route::Api
        );
        assert_eq!(
            resolve(&Method::GET, "/health", None).unwrap(),
            Route::Health
        );
        assert_eq!(
            resolve(&Method::HEAD, "/metrics", None).unwrap(),
            Route::Prometheus
        );
        let r = resolve(&Method::GET, "/api/v1", None).unwrap_err();
        assert_eq!(
            (r.error.status, r.allow),
            (StatusCode::METHOD_NOT_ALLOWED, Some("POST"))
        );
        assert_eq!(
            resolve(&Method::DELETE, "/state", None).unwrap_err().allow,
            Some("GET, HEAD")
        );
        assert_eq!(
            resolve(&Method::GET, "/nope", None)
                .unwrap_err()
                .error
                .status,
            404
        );
        assert_eq!(
            resolve(&Method::GET, "/api/v2", None)
                .unwrap_err()
                .error
                .status,
            404
        );
    }

    #[test]
    fn file_query_parameters_are_checked() {
        assert_eq!(
            resolve(
                &Method::GET,
                "/files/read",
                Some("path=%2Fcontainers%2Fc%2Fstdout&offset=-1")
            )
            .unwrap(),
            Route::FilesRead {
                path: "/containers/c/stdout".into(),
                offset: -1,
                length: None,
                jsonp: None
            }
        );
        assert_eq!(
            resolve(
                &Method::GET,
                "/files/read",
                Some("path=/x&offset=5&length=10")
            )
            .unwrap(),
            Route::FilesRead {
                path: "/x".into(),
                offset: 5,
                length: Some(10),
                jsonp: None
            }
        );
        // Mesos's defaults: no offset is -1 (the size), length -1 is "to the end".
        assert_eq!(
            resolve(&Method::GET, "/files/read", Some("path=/x")).unwrap(),
            Route::FilesRead {
                path: "/x".into(),
                offset: -1,
                length: None,
                jsonp: None
            }
        );
        assert_eq!(
            resolve(
                &Method::GET,
                "/files/read",
                Some("path=/x&offset=0&length=-1&jsonp=cb")
            )
            .unwrap(),
            Route::FilesRead {
                path: "/x".into(),
                offset: 0,
                length: None,
                jsonp: Some(Callback::parse("cb").unwrap())
            }
        );
        for bad in ["length=-2", "offset=", "length="] {
            let e = resolve(&Method::GET, "/files/read", Some(&format!("path=/x&{bad}")))
                .unwrap_err()
                .error;
            assert_eq!(e.status, 400, "{bad}");
        }
        let e = resolve(&Method::GET, "/files/read", Some("path=/x&jsonp=alert(1)"))
            .unwrap_err()
            .error;
        assert!(e.status == 400 && e.message.contains("'jsonp'"), "{e}");
        let e = resolve(&Method::GET, "/state", Some("jsonp=%3Cscript%3E"))
            .unwrap_err()
            .error;
        assert!(e.status == 400 && e.message.contains("'jsonp'"), "{e}");
        assert_eq!(
            resolve(&Method::GET, "/containers", Some("container_id=c1")).unwrap(),
            Route::Containers {
                container_id: Some("c1".into()),
                jsonp: None
            }
        );
        let e = resolve(&Method::GET, "/containers", Some("framework_id=f"))
            .unwrap_err()
            .error;
        assert!(
            e.status == 400 && e.message.contains("'framework_id'"),
            "{e}"
        );
        let e = resolve(&Method::GET, "/files/read", Some("path=/x&offset=-2"))
            .unwrap_err()
            .error;
        assert!(e.status == 400 && e.message.contains("'offset'"));
        let e = resolve(&Method::GET, "/files/read", Some("path=/x&length=lots"))
            .unwrap_err()
            .error;
        assert!(e.status == 400 && e.message.contains("'length'"));
        for q in [None, Some("path="), Some("path=&jsonp=cb")] {
            for endpoint in ["/files/browse", "/files/read", "/files/download"] {
                let e = resolve(&Method::GET, endpoint, q).unwrap_err().error;
                assert!(
                    e.status == 400 && e.message.contains("'path'"),
                    "{endpoint}"
                );
            }
        }
    }

    fn h(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn api_headers_are_checked() {
        check_api_headers(&h(&[(header::CONTENT_TYPE, "application/json")])).unwrap();
        check_api_headers(&h(&[
            (header::CONTENT_TYPE, "Application/JSON; charset=utf-8"),
            (header::ACCEPT, "*/*"),
        ]))
        .unwrap();
        // As Mesos: a missing Content-Type is a bad request, an unknown one unsupported.
        assert_eq!(check_api_headers(&h(&[])).unwrap_err().status, 400);
        let e = check_api_headers(&h(&[(header::CONTENT_TYPE, "text/plain")])).unwrap_err();
        assert!(e.status == 415 && e.message.contains("application/x-protobuf"));
        check_api_headers(&h(&[
            (header::CONTENT_TYPE, "application/x-protobuf"),
            (header::ACCEPT, "application/x-protobuf"),
        ]))
        .unwrap();
        let e = check_api_headers(&h(&[
            (header::CONTENT_TYPE, "application/json"),
            (header::ACCEPT, "text/html"),
        ]))
        .unwrap_err();
        assert_eq!(e.status, 406);
        let e = check_api_headers(&h(&[
            (header::CONTENT_TYPE, "application/json"),
            (header::CONTENT_LENGTH, "1048577"),
        ]))
        .unwrap_err();
        assert_eq!(e.status, 413);
        check_api_headers(&h(&[
            (header::CONTENT_TYPE, "application/json"),
            (header::CONTENT_LENGTH, "1048576"),
        ]))
        .unwrap();
    }
}
