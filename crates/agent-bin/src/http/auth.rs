//! Authentication: a bearer token (`--auth-token-file`) and HTTP Basic against a Mesos
//! credentials file (`--http-credentials`, Mesos's default `basic` HTTP authenticator). Either
//! scheme passes when both are configured.
//!
//! Which endpoints need it follows Mesos's two realms: `--authenticate-http-readwrite` governs
//! `/api/v1` ([`READWRITE_REALM`]), `--authenticate-http-readonly` every other endpoint but
//! `/health` ([`READONLY_REALM`]); see [`realm_of`].

use std::path::Path;

use base64::Engine as _;

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use super::body::{text, Body};
use crate::error::Error;

/// The shortest token accepted; anything shorter is too easy to guess.
pub const MIN_TOKEN_LEN: usize = 16;

/// Mesos's realm for the agent's read-write endpoints (`/api/v1`), named in a Basic challenge.
pub const READWRITE_REALM: &str = "mesos-agent-readwrite";
/// Mesos's realm for the agent's read-only endpoints (`/state`, `/files/*`, `/metrics/snapshot`).
pub const READONLY_REALM: &str = "mesos-agent-readonly";

/// Which of Mesos's authentication realms a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realm {
    /// `/api/v1`: launches, kills and removes containers (`--authenticate-http-readwrite`).
    ReadWrite,
    /// Every other path, including ones no route answers, so that a caller without
    /// credentials learns nothing of the routes (`--authenticate-http-readonly`).
    ReadOnly,
    /// `/health`: never authenticated, as in Mesos.
    Open,
}

/// The realm of a request path. `/version` is open in Mesos; Berth keeps it in the read-only
/// realm because its answer names the Docker daemon's version, which tells an attacker which
/// daemon bugs to try.
pub fn realm_of(path: &str) -> Realm {
    if super::server::is_public(path) {
        Realm::Open
    } else if path == "/api/v1" || path.starts_with("/api/v1/") {
        Realm::ReadWrite
    } else {
        Realm::ReadOnly
    }
}

/// One principal and its secret from the credentials file.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// Who.
    pub principal: String,
    /// The password sent with HTTP Basic.
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("Credential")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// Who may call the API.
#[derive(Clone)]
pub struct Auth {
    token: Option<String>,
    credentials: Vec<Credential>,
    /// Whether [`Realm::ReadWrite`] needs authentication (when any is configured).
    readwrite: bool,
    /// Whether [`Realm::ReadOnly`] needs authentication (when any is configured).
    readonly: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("bearer", &self.token.is_some())
            .field("basic_principals", &self.credentials.len())
            .field("readwrite", &self.readwrite)
            .field("readonly", &self.readonly)
            .finish()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization` header of a scheme the agent accepts.
    Missing,
    /// A bearer token that does not match.
    Invalid,
    /// Basic credentials that do not match (or a malformed Basic header).
    InvalidBasic,
}

impl Auth {
    /// No authentication.
    pub fn none() -> Auth {
        Auth {
            token: None,
            credentials: Vec::new(),
            readwrite: true,
            readonly: true,
        }
    }

    /// Requires `token`.
    pub fn token(token: impl Into<String>) -> Auth {
        Auth {
            token: Some(token.into()),
            credentials: Vec::new(),
            readwrite: true,
            readonly: true,
        }
    }

    /// Also accepts HTTP Basic with any of `credentials`.
    pub fn with_credentials(mut self, credentials: Vec<Credential>) -> Auth {
        self.credentials = credentials;
        self
    }

    /// Sets which realms need authentication (both do unless told otherwise):
    /// `--authenticate-http-readwrite` and `--authenticate-http-readonly`.
    pub fn with_realms(mut self, readwrite: bool, readonly: bool) -> Auth {
        self.readwrite = readwrite;
        self.readonly = readonly;
        self
    }

    /// Whether a request to `path` must authenticate: something to authenticate against is
    /// configured and the path's realm is protected.
    pub fn protects(&self, path: &str) -> bool {
        self.required()
            && match realm_of(path) {
                Realm::ReadWrite => self.readwrite,
                Realm::ReadOnly => self.readonly,
                Realm::Open => false,
            }
    }

    /// [`Auth::check`] for a request to `path`, or `Ok` when its realm is open. As in Mesos, an
    /// open realm ignores the `Authorization` header (no authenticator is installed for it).
    pub fn check_path(&self, path: &str, headers: &HeaderMap) -> Result<(), Denied> {
        if self.protects(path) {
            self.check(headers)
        } else {
            Ok(())
        }
    }

    /// Reads `--auth-token-file` and `--http-credentials`, whichever are given.
    pub fn from_files(token: Option<&Path>, credentials: Option<&Path>) -> Result<Auth, Error> {
        let auth = match token {
            Some(p) => Auth::from_file(p)?,
            None => Auth::none(),
        };
        Ok(match credentials {
            Some(p) => auth.with_credentials(read_credentials(p)?),
            None => auth,
        })
    }

    /// Reads the token from `path` (surrounding whitespace ignored); fails with the fix when the
    /// file is unreadable, empty or too short.
    pub fn from_file(path: &Path) -> Result<Auth, Error> {
        let text = read_private(
            path,
            "--auth-token-file",
            "create the file with a secret token, e.g. `head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE`",
        )?;
        let token = text.trim();
        if token.len() < MIN_TOKEN_LEN || token.contains(char::is_whitespace) {
            return Err(Error::startup(
                format!(
                    "--auth-token-file '{}' must hold one token of at least {MIN_TOKEN_LEN} characters without spaces",
                    path.display()
                ),
                "write a longer secret into it, e.g. `head -c 32 /dev/urandom | base64 > FILE`",
            ));
        }
        Ok(Auth::token(token))
    }

    /// Whether callers must authenticate.
    pub fn required(&self) -> bool {
        self.token.is_some() || !self.credentials.is_empty()
    }

    /// Checks a request's headers: a bearer token or Basic credentials, whichever the agent
    /// was given (either passes when it has both).
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Denied> {
        if !self.required() {
            return Ok(());
        }
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(Denied::Missing)?;
        let (scheme, rest) = value.split_once(' ').ok_or(Denied::Missing)?;
        if scheme.eq_ignore_ascii_case("bearer") {
            let Some(expected) = &self.token else {
                return Err(Denied::Missing);
            };
            return if constant_time_eq(rest.trim().as_bytes(), expected.as_bytes()) {
                Ok(())
            } else {
                Err(Denied::Invalid)
            };
        }
        if scheme.eq_ignore_ascii_case("basic") {
            if self.credentials.is_empty() {
                return Err(Denied::Missing);
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .map_err(|_| Denied::InvalidBasic)?;
            // RFC 7617: the user id ends at the first colon; the password may hold colons.
            let text = String::from_utf8(decoded).map_err(|_| Denied::InvalidBasic)?;
            let (principal, secret) = text.split_once(':').ok_or(Denied::InvalidBasic)?;
            return if self.basic_matches(principal, secret) {
                Ok(())
            } else {
                Err(Denied::InvalidBasic)
            };
        }
        Err(Denied::Missing)
    }

    /// Compares against every credential, each in constant time and without stopping at a
    /// match, so timing says neither which principal exists nor how much of a secret was right.
    fn basic_matches(&self, principal: &str, secret: &str) -> bool {
        let mut found = false;
        for c in &self.credentials {
            let hit = constant_time_eq(principal.as_bytes(), c.principal.as_bytes())
                & constant_time_eq(secret.as_bytes(), c.secret.as_bytes());
            found |= hit;
        }
        found
    }

    /// The 401 answer for a request to `path`: one challenge per accepted scheme. The Basic
    /// challenge names Mesos's realm for the endpoint (read-write for `/api/v1`, read-only for
    /// the rest), as a Mesos agent's does.
    pub fn unauthorized(&self, denied: Denied, path: &str) -> Response<Body> {
        let mut schemes = Vec::new();
        if self.token.is_some() {
            schemes.push(
                "'Authorization: Bearer <token>' (the token in the agent's --auth-token-file)",
            );
        }
        if !self.credentials.is_empty() {
            schemes.push("'Authorization: Basic <base64 of principal:secret>' (a principal in the agent's --http-credentials)");
        }
        let message = match denied {
            Denied::Missing => format!("authentication required: send {}", schemes.join(" or ")),
            Denied::Invalid => "invalid bearer token".to_owned(),
            Denied::InvalidBasic => {
                "invalid HTTP Basic credentials: no such principal with that secret".to_owned()
            }
        };
        let mut r = text(StatusCode::UNAUTHORIZED, &message);
        if !self.credentials.is_empty() {
            let realm = if realm_of(path) == Realm::ReadWrite {
                READWRITE_REALM
            } else {
                READONLY_REALM
            };
            r.headers_mut().append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
                    .expect("a realm is a valid header value"),
            );
        }
        if self.token.is_some() {
            r.headers_mut().append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"berth\""),
            );
        }
        r
    }
}

/// Opens `path`, refuses it unless private (see [`check_private`]; checked on the open file, so
/// the file read is the file checked) and reads it. `flag` names the flag in errors.
fn read_private(path: &Path, flag: &str, create_hint: &str) -> Result<String, Error> {
    let unreadable = |e: std::io::Error| {
        Error::startup(
            format!("cannot read {flag} '{}': {e}", path.display()),
            create_hint,
        )
    };
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    {
        use std::os::unix::fs::MetadataExt;
        check_private(
            path,
            flag,
            meta.is_file(),
            meta.uid(),
            meta.mode(),
            rustix::process::geteuid().as_raw(),
        )?;
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).map_err(unreadable)?;
    Ok(text)
}

/// The credentials file's shape, Mesos's `Credentials` message in JSON.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    credentials: Vec<CredentialEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialEntry {
    principal: String,
    #[serde(default)]
    secret: Option<String>,
}

/// Reads a Mesos credentials file: `{"credentials":[{"principal":"p","secret":"s"}, ...]}`,
/// private like the token file.
pub fn read_credentials(path: &Path) -> Result<Vec<Credential>, Error> {
    let text = read_private(
        path,
        "--http-credentials",
        "create it as JSON, e.g. `{\"credentials\":[{\"principal\":\"ops\",\"secret\":\"...\"}]}`, then `chmod 600 FILE`",
    )?;
    parse_credentials(&text).map_err(|problem| {
        Error::startup(
            format!("--http-credentials '{}': {problem}", path.display()),
            "write Mesos's JSON form: `{\"credentials\":[{\"principal\":\"ops\",\"secret\":\"...\"}]}`",
        )
    })
}

/// Parses and validates the credentials file's text; the error says what is wrong, never a
/// secret.
pub fn parse_credentials(text: &str) -> Result<Vec<Credential>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the file is empty: it must name at least one principal".into());
    }
    if !trimmed.starts_with('{') {
        // Mesos dropped the `principal secret` line form (its commit "Remove credential text
        // format support"); a Mesos agent refuses such a file too, so Berth says so instead of
        // guessing.
        return Err("not JSON: the `principal secret` line form is not accepted (Mesos no longer reads it either)".into());
    }
    let file: CredentialsFile = serde_json::from_str(trimmed).map_err(|e| {
        // serde_json's message may quote the input, which could be a secret: keep only the
        // position and the kind of error.
        let what = match e.classify() {
            // "unknown field `x`" and "missing field `x`" name fields, never values.
            serde_json::error::Category::Data if e.to_string().contains(" field `") => {
                e.to_string()
            }
            serde_json::error::Category::Data => format!(
                "a value of the wrong type at line {} column {} (principal and secret are strings)",
                e.line(),
                e.column()
            ),
            _ => format!("invalid JSON at line {} column {}", e.line(), e.column()),
        };
        format!("not a Mesos Credentials object: {what}")
    })?;
    if file.credentials.is_empty() {
        return Err("\"credentials\" is empty: it must name at least one principal".into());
    }
    let mut out: Vec<Credential> = Vec::with_capacity(file.credentials.len());
    for (i, c) in file.credentials.into_iter().enumerate() {
        if c.principal.is_empty() || c.principal.contains(':') {
            return Err(format!(
                "credentials[{i}].principal must be non-empty and hold no ':' (HTTP Basic ends the principal at the first ':')"
            ));
        }
        let Some(secret) = c.secret.filter(|s| !s.is_empty()) else {
            return Err(format!(
                "credentials[{i}] (principal '{}') has no secret: anyone could authenticate as it",
                c.principal
            ));
        };
        if out.iter().any(|o| o.principal == c.principal) {
            return Err(format!(
                "credentials[{i}]: principal '{}' appears twice",
                c.principal
            ));
        }
        out.push(Credential {
            principal: c.principal,
            secret,
        });
    }
    Ok(out)
}

/// Refuses a secret file (token or credentials, named by `flag`) others could read or change, as
/// ssh refuses a private key: it must be a regular file owned by the agent's user (`euid`) or
/// root, with no group or other permission bits.
fn check_private(
    path: &Path,
    flag: &str,
    is_file: bool,
    owner: u32,
    mode: u32,
    euid: u32,
) -> Result<(), Error> {
    let shown = path.display();
    if !is_file {
        return Err(Error::startup(
            format!("{flag} '{shown}' is not a regular file"),
            format!("point {flag} at a regular file"),
        ));
    }
    if owner != euid && owner != 0 {
        return Err(Error::startup(
            format!(
                "{flag} '{shown}' is owned by uid {owner}, not by the agent's user (uid {euid}) or root: its owner could change the secret"
            ),
            format!("`chown {euid} '{shown}' && chmod 600 '{shown}'`"),
        ));
    }
    let mode = mode & 0o7777;
    if mode & 0o077 != 0 {
        let who = if mode & 0o007 != 0 {
            "any user"
        } else {
            "its group"
        };
        return Err(Error::startup(
            format!(
                "{flag} '{shown}' has mode {mode:04o}: {who} can read or change the secret (like ssh with a private key, the agent refuses it)"
            ),
            format!("`chmod 600 '{shown}'`"),
        ));
    }
    Ok(())
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right; the
/// loop runs over the expected token's length whatever the guess's, so it does not reveal that
/// length either.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(!e);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn the_comparison_needs_every_byte_and_the_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        for given in [&b""[..], b"ab", b"abd", b"abcd", b"\xff\xff\xff", b"xbc"] {
            assert!(!constant_time_eq(given, b"abc"), "{given:?}");
        }
        assert!(!constant_time_eq(b"a", b""));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn tokens_are_checked() {
        let a = Auth::token("s3cret-s3cret-s3cret");
        assert_eq!(a.check(&headers(None)), Err(Denied::Missing));
        assert_eq!(a.check(&headers(Some("Basic abc"))), Err(Denied::Missing));
        assert_eq!(a.check(&headers(Some("Bearer nope"))), Err(Denied::Invalid));
        assert_eq!(
            a.check(&headers(Some("Bearer s3cret-s3cret-s3cre"))),
            Err(Denied::Invalid)
        );
        assert_eq!(
            a.check(&headers(Some("Bearer s3cret-s3cret-s3cret!"))),
            Err(Denied::Invalid)
        );
        assert_eq!(
            a.check(&headers(Some("Bearer s3cret-s3cret-s3cret"))),
            Ok(())
        );
        assert_eq!(Auth::none().check(&headers(None)), Ok(()));
        let r = a.unauthorized(Denied::Missing, "/api/v1");
        assert_eq!(r.status(), 401);
        let challenges: Vec<_> = r
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .collect();
        assert_eq!(challenges, ["Bearer realm=\"berth\""]);
    }

    fn set_mode(f: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn token_files_of_another_user_or_not_files_are_refused() {
        let f = Path::new("/etc/berth/token");
        let flag = "--auth-token-file";
        check_private(f, flag, true, 1000, 0o100600, 1000).unwrap();
        check_private(f, flag, true, 0, 0o100400, 1000).unwrap();
        let e = check_private(f, flag, true, 1001, 0o100600, 1000)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("owned by uid 1001") && e.contains("chown 1000 '/etc/berth/token'"),
            "{e}"
        );
        let e = check_private(f, flag, false, 0, 0o040700, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = Auth::from_file(dir.path()).unwrap_err().to_string();
        assert!(e.contains("--auth-token-file"), "{e}");
    }

    #[test]
    fn token_files_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        let e = Auth::from_file(&f).unwrap_err().to_string();
        assert!(
            e.contains("cannot read --auth-token-file") && e.contains("fix:"),
            "{e}"
        );
        std::fs::write(&f, "short\n").unwrap();
        set_mode(&f, 0o600);
        assert!(Auth::from_file(&f)
            .unwrap_err()
            .to_string()
            .contains("at least 16"));
        std::fs::write(&f, "0123456789abcdef0123\n").unwrap();
        let a = Auth::from_file(&f).unwrap();
        // Readable or writable by the group or by anyone: refused, naming the mode and the fix.
        for (mode, who) in [
            (0o644, "any user"),
            (0o640, "its group"),
            (0o620, "its group"),
            (0o602, "any user"),
        ] {
            set_mode(&f, mode);
            let e = Auth::from_file(&f).unwrap_err().to_string();
            assert!(
                e.contains(&format!("mode {mode:04o}"))
                    && e.contains(who)
                    && e.contains("chmod 600")
                    && e.contains(&*f.to_string_lossy()),
                "{e}"
            );
        }
        set_mode(&f, 0o400);
        Auth::from_file(&f).unwrap();
        assert_eq!(
            a.check(&headers(Some("Bearer 0123456789abcdef0123"))),
            Ok(())
        );
    }

    fn basic(principal_secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(principal_secret)
        )
    }

    fn ops() -> Vec<Credential> {
        parse_credentials(
            r#"{"credentials":[{"principal":"ops","secret":"pa:ss-word"},{"principal":"ro","secret":"other"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn basic_credentials_are_checked() {
        let a = Auth::none().with_credentials(ops());
        assert!(a.required());
        assert_eq!(a.check(&headers(None)), Err(Denied::Missing));
        assert_eq!(a.check(&headers(Some(&basic("ops:pa:ss-word")))), Ok(()));
        assert_eq!(a.check(&headers(Some(&basic("ro:other")))), Ok(()));
        // The scheme's name is case-insensitive (RFC 9110).
        let lower = basic("ro:other").replacen("Basic", "basic", 1);
        assert_eq!(a.check(&headers(Some(&lower))), Ok(()));
        for bad in [
            basic("ops:pa:ss-wor"),
            basic("ops:other"), // another principal's secret
            basic("ro:pa:ss-word"),
            basic("nobody:other"),
            basic("ops"), // no colon
            basic(":pa:ss-word"),
            "Basic !!!not-base64".to_owned(),
            "Basic ".to_owned(),
        ] {
            assert_eq!(
                a.check(&headers(Some(&bad))),
                Err(Denied::InvalidBasic),
                "{bad}"
            );
        }
        // A bearer token when only Basic is configured is not a credential the agent knows.
        assert_eq!(
            a.check(&headers(Some("Bearer s3cret-s3cret-s3cret"))),
            Err(Denied::Missing)
        );
        let r = a.unauthorized(Denied::Missing, "/api/v1");
        let challenges: Vec<_> = r
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .collect();
        assert_eq!(challenges, ["Basic realm=\"mesos-agent-readwrite\""]);
        let r = a.unauthorized(Denied::InvalidBasic, "/files/read");
        assert_eq!(r.status(), 401);
        let challenges: Vec<_> = r
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .collect();
        assert_eq!(challenges, ["Basic realm=\"mesos-agent-readonly\""]);
    }

    #[test]
    fn either_scheme_passes_when_both_are_configured() {
        let a = Auth::token("s3cret-s3cret-s3cret").with_credentials(ops());
        assert_eq!(
            a.check(&headers(Some("Bearer s3cret-s3cret-s3cret"))),
            Ok(())
        );
        assert_eq!(a.check(&headers(Some(&basic("ops:pa:ss-word")))), Ok(()));
        assert_eq!(
            a.check(&headers(Some("Bearer pa:ss-word"))),
            Err(Denied::Invalid)
        );
        // The token is not a Basic secret, nor the other way round.
        assert_eq!(
            a.check(&headers(Some(&basic("ops:s3cret-s3cret-s3cret")))),
            Err(Denied::InvalidBasic)
        );
        assert_eq!(a.check(&headers(Some("Digest x"))), Err(Denied::Missing));
        let r = a.unauthorized(Denied::Missing, "/state");
        let challenges: Vec<_> = r
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .collect();
        assert_eq!(
            challenges,
            [
                "Basic realm=\"mesos-agent-readonly\"",
                "Bearer realm=\"berth\""
            ]
        );
    }

    #[test]
    fn each_path_falls_in_mesos_realm_and_the_flags_open_one_realm_at_a_time() {
        assert_eq!(realm_of("/api/v1"), Realm::ReadWrite);
        assert_eq!(realm_of("/api/v1/executor"), Realm::ReadWrite);
        for p in [
            "/state",
            "/flags",
            "/containers",
            "/monitor/statistics",
            "/files/read",
            "/files/browse",
            "/files/download",
            "/metrics",
            "/metrics/snapshot",
            "/version",
            "/api/v1x",
            "/no-such-path",
            "/",
        ] {
            assert_eq!(realm_of(p), Realm::ReadOnly, "{p}");
        }
        assert_eq!(realm_of("/health"), Realm::Open);
        let token = "Bearer s3cret-s3cret-s3cret";
        let both = Auth::token("s3cret-s3cret-s3cret");
        let readonly_open = both.clone().with_realms(true, false);
        let readwrite_open = both.clone().with_realms(false, true);
        for (path, protected_by) in [
            ("/api/v1", [true, true, false]),
            ("/state", [true, false, true]),
            ("/files/read", [true, false, true]),
            ("/metrics/snapshot", [true, false, true]),
            ("/health", [false, false, false]),
        ] {
            for (auth, protected) in [&both, &readonly_open, &readwrite_open]
                .into_iter()
                .zip(protected_by)
            {
                assert_eq!(auth.protects(path), protected, "{path} {auth:?}");
                let anonymous = auth.check_path(path, &headers(None));
                assert_eq!(anonymous.is_err(), protected, "{path} {auth:?}");
                // The right token passes everywhere; a wrong one is ignored where the realm is
                // open (as in Mesos, which installs no authenticator for it).
                assert_eq!(auth.check_path(path, &headers(Some(token))), Ok(()));
                let wrong = auth.check_path(path, &headers(Some("Bearer wrong")));
                assert_eq!(wrong.is_err(), protected, "{path} {auth:?}");
            }
        }
        // Without anything configured no realm is protected, whatever the flags.
        assert!(!Auth::none().with_realms(true, true).protects("/api/v1"));
    }

    #[test]
    fn credentials_files_are_parsed_as_mesos_writes_them() {
        let c = ops();
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].principal.as_str(), c[0].secret.as_str()),
            ("ops", "pa:ss-word")
        );
        assert!(
            !format!("{c:?}").contains("pa:ss-word"),
            "no secret in Debug"
        );
        for (text, wanted) in [
            ("", "empty"),
            ("  \n", "empty"),
            ("ops s3cret\n", "line form is not accepted"),
            ("{", "invalid JSON at line 1"),
            (r#"{"credentials":[]}"#, "at least one principal"),
            (r#"{"credential":[]}"#, "unknown field `credential`"),
            (
                r#"{"credentials":[{"principal":"a","secret":"s","x":1}]}"#,
                "unknown field `x`",
            ),
            (
                r#"{"credentials":[{"secret":"s"}]}"#,
                "missing field `principal`",
            ),
            (
                r#"{"credentials":[{"principal":"a"}]}"#,
                "credentials[0] (principal 'a') has no secret",
            ),
            (
                r#"{"credentials":[{"principal":"a","secret":""}]}"#,
                "has no secret",
            ),
            (
                r#"{"credentials":[{"principal":"","secret":"s"}]}"#,
                "credentials[0].principal",
            ),
            (
                r#"{"credentials":[{"principal":"a:b","secret":"s"}]}"#,
                "no ':'",
            ),
            (
                r#"{"credentials":[{"principal":"a","secret":"s"},{"principal":"a","secret":"t"}]}"#,
                "credentials[1]: principal 'a' appears twice",
            ),
            (
                r#"{"credentials":[{"principal":"a","secret":12345678}]}"#,
                "wrong type at line 1",
            ),
        ] {
            let e = parse_credentials(text).unwrap_err();
            assert!(e.contains(wanted), "{text:?}: {e}");
            assert!(
                !e.contains("12345678"),
                "a secret leaked into the error: {e}"
            );
        }
    }

    #[test]
    fn credentials_files_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("credentials.json");
        std::fs::write(&f, r#"{"credentials":[{"principal":"ops","secret":"s"}]}"#).unwrap();
        for (mode, who) in [
            (0o644, "any user"),
            (0o640, "its group"),
            (0o604, "any user"),
        ] {
            set_mode(&f, mode);
            let e = read_credentials(&f).unwrap_err().to_string();
            assert!(
                e.contains("--http-credentials")
                    && e.contains(&format!("mode {mode:04o}"))
                    && e.contains(who)
                    && e.contains("chmod 600"),
                "{e}"
            );
        }
        set_mode(&f, 0o600);
        assert_eq!(read_credentials(&f).unwrap()[0].principal, "ops");
        let a = Auth::from_files(None, Some(&f)).unwrap();
        assert_eq!(a.check(&headers(Some(&basic("ops:s")))), Ok(()));
        std::fs::write(&f, "ops s\n").unwrap();
        let e = read_credentials(&f).unwrap_err().to_string();
        assert!(
            e.contains("--http-credentials") && e.contains("JSON"),
            "{e}"
        );
        let e = read_credentials(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read --http-credentials"), "{e}");
    }
}
