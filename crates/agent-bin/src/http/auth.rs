//! Bearer-token authentication: loading the token file and checking requests.

use std::path::Path;

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use super::body::{text, Body};
use crate::error::Error;

/// The shortest token accepted; anything shorter is too easy to guess.
pub const MIN_TOKEN_LEN: usize = 16;

/// Who may call the API.
#[derive(Clone)]
pub struct Auth {
    token: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("required", &self.token.is_some())
            .finish()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token that does not match.
    Invalid,
}

impl Auth {
    /// No authentication.
    pub fn none() -> Auth {
        Auth { token: None }
    }

    /// Requires `token`.
    pub fn token(token: impl Into<String>) -> Auth {
        Auth {
            token: Some(token.into()),
        }
    }

    /// Reads the token from `path` (surrounding whitespace ignored); fails with the fix when the
    /// file is unreadable, empty or too short.
    pub fn from_file(path: &Path) -> Result<Auth, Error> {
        let unreadable = |e: std::io::Error| {
            Error::startup(
                format!("cannot read --auth-token-file '{}': {e}", path.display()),
                "create the file with a secret token, e.g. `head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE`",
            )
        };
        let mut file = std::fs::File::open(path).map_err(unreadable)?;
        // Checked on the open file, so the file read is the file checked.
        let meta = file.metadata().map_err(unreadable)?;
        {
            use std::os::unix::fs::MetadataExt;
            check_private(
                path,
                meta.is_file(),
                meta.uid(),
                meta.mode(),
                rustix::process::geteuid().as_raw(),
            )?;
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).map_err(unreadable)?;
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

    /// Whether a token is required.
    pub fn required(&self) -> bool {
        self.token.is_some()
    }

    /// Checks a request's headers.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Denied> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(Denied::Missing)?;
        if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(Denied::Invalid)
        }
    }
}

/// Refuses a token file others could read or change, as ssh refuses a private key: it must be a
/// regular file owned by the agent's user (`euid`) or root, with no group or other permission
/// bits.
fn check_private(
    path: &Path,
    is_file: bool,
    owner: u32,
    mode: u32,
    euid: u32,
) -> Result<(), Error> {
    let shown = path.display();
    if !is_file {
        return Err(Error::startup(
            format!("--auth-token-file '{shown}' is not a regular file"),
            "point --auth-token-file at a file holding the token",
        ));
    }
    if owner != euid && owner != 0 {
        return Err(Error::startup(
            format!(
                "--auth-token-file '{shown}' is owned by uid {owner}, not by the agent's user (uid {euid}) or root: its owner could change the token"
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
                "--auth-token-file '{shown}' has mode {mode:04o}: {who} can read or change the token (like ssh with a private key, the agent refuses it)"
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

/// The 401 answer.
pub fn unauthorized(denied: Denied) -> Response<Body> {
    let message = match denied {
        Denied::Missing => "authentication required: send 'Authorization: Bearer <token>' (the token in the agent's --auth-token-file)",
        Denied::Invalid => "invalid bearer token",
    };
    let mut r = text(StatusCode::UNAUTHORIZED, message);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"berth\""),
    );
    r
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
        let r = unauthorized(Denied::Missing);
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    fn set_mode(f: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn token_files_of_another_user_or_not_files_are_refused() {
        let f = Path::new("/etc/berth/token");
        check_private(f, true, 1000, 0o100600, 1000).unwrap();
        check_private(f, true, 0, 0o100400, 1000).unwrap();
        let e = check_private(f, true, 1001, 0o100600, 1000)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("owned by uid 1001") && e.contains("chown 1000 '/etc/berth/token'"),
            "{e}"
        );
        let e = check_private(f, false, 0, 0o040700, 0)
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
}
