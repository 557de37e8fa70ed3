//! Registry credentials for pulls and pushes, sent as the `X-Registry-Auth` header.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Credentials for one registry.
///
/// `Debug` never prints secrets.
#[derive(Clone, Default, Serialize, PartialEq, Eq)]
pub struct RegistryAuth {
    /// User name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The registry these credentials are for, e.g. `127.0.0.1:5302`.
    #[serde(rename = "serveraddress", skip_serializing_if = "Option::is_none")]
    pub server_address: Option<String>,
    /// An identity (refresh) token, instead of a password.
    #[serde(rename = "identitytoken", skip_serializing_if = "Option::is_none")]
    pub identity_token: Option<String>,
    /// A bearer token for the registry, instead of a password.
    #[serde(rename = "registrytoken", skip_serializing_if = "Option::is_none")]
    pub registry_token: Option<String>,
}

impl RegistryAuth {
    /// Basic credentials for `server_address`.
    pub fn basic(
        username: impl Into<String>,
        password: impl Into<String>,
        server_address: impl Into<String>,
    ) -> RegistryAuth {
        RegistryAuth {
            username: Some(username.into()),
            password: Some(password.into()),
            server_address: Some(server_address.into()),
            ..RegistryAuth::default()
        }
    }

    /// The `X-Registry-Auth` header value: the JSON credentials, URL-safe base64 encoded.
    pub fn header_value(&self) -> String {
        let json = serde_json::to_vec(self).expect("credentials serialize");
        base64::engine::general_purpose::URL_SAFE.encode(json)
    }
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .field("server_address", &self.server_address)
            .field("identity_token", &redact(&self.identity_token))
            .field("registry_token", &redact(&self.registry_token))
            .finish()
    }
}

/// The `auths` section of a Docker client `config.json` (credential helpers are not run).
#[derive(Debug, Clone, Default)]
pub struct DockerConfig {
    path: PathBuf,
    auths: HashMap<String, AuthEntry>,
}

#[derive(Clone, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
    #[serde(default, rename = "registrytoken")]
    registry_token: Option<String>,
}

impl fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthEntry(<redacted>)")
    }
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

impl DockerConfig {
    /// Where the Docker CLI keeps its configuration: `$DOCKER_CONFIG/config.json`, else
    /// `$HOME/.docker/config.json`. `None` when neither variable is set.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|home| PathBuf::from(home).join(".docker").join("config.json"))
    }

    /// Reads the Docker CLI's configuration from [`DockerConfig::default_path`]; `Ok(None)` when
    /// there is no such file (no credentials configured).
    pub fn load_default() -> Result<Option<DockerConfig>> {
        match DockerConfig::default_path() {
            Some(path) if path.exists() => DockerConfig::load(&path).map(Some),
            _ => Ok(None),
        }
    }

    /// The credentials for the registry of `image` (a reference such as
    /// `127.0.0.1:5302/team/app:1.0`); `None` when the reference names no registry or none are
    /// stored for it.
    pub fn auth_for_image(&self, image: &str) -> Result<Option<RegistryAuth>> {
        match crate::reference::ImageReference::parse(image)?.registry {
            Some(registry) => self.auth_for(&registry),
            None => Ok(None),
        }
    }

    /// Reads `path`. A missing file is an error here: callers that treat it as "no credentials"
    /// check existence first.
    pub fn load(path: &Path) -> Result<DockerConfig> {
        let fail = |reason: String| Error::Credentials {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        DockerConfig::parse(path, &text)
    }

    /// Parses the content of a `config.json`; `path` is only used in error messages.
    pub fn parse(path: &Path, text: &[u8]) -> Result<DockerConfig> {
        let file: ConfigFile = serde_json::from_slice(text).map_err(|e| Error::Credentials {
            path: path.to_owned(),
            reason: format!("it is not a Docker config file: {e}"),
        })?;
        Ok(DockerConfig {
            path: path.to_owned(),
            auths: file.auths,
        })
    }

    /// The credentials stored for `registry` (a host with optional port, e.g. `127.0.0.1:5302`).
    /// Keys written with a scheme or path (`https://host/v1/`) match too.
    pub fn auth_for(&self, registry: &str) -> Result<Option<RegistryAuth>> {
        let wanted = normalize_key(registry);
        let Some(entry) = self
            .auths
            .iter()
            .find(|(key, _)| normalize_key(key) == wanted)
            .map(|(_, e)| e)
        else {
            return Ok(None);
        };
        let fail = |reason: &str| Error::Credentials {
            path: self.path.clone(),
            reason: format!("the `auths` entry for {registry} {reason}"),
        };
        let (mut username, mut password) = (entry.username.clone(), entry.password.clone());
        if let Some(encoded) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| fail("has an `auth` value that is not base64"))?;
            let decoded = String::from_utf8(decoded)
                .map_err(|_| fail("has an `auth` value that is not UTF-8"))?;
            let (user, pass) = decoded
                .split_once(':')
                .ok_or_else(|| fail("has an `auth` value that is not `user:password`"))?;
            username = Some(user.to_owned());
            password = Some(pass.to_owned());
        }
        Ok(Some(RegistryAuth {
            username,
            password,
            server_address: Some(registry.to_owned()),
            identity_token: entry.identity_token.clone(),
            registry_token: entry.registry_token.clone(),
        }))
    }
}

fn normalize_key(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_url_safe_base64_json() {
        let auth = RegistryAuth::basic("berth", "s3cr?t>>", "127.0.0.1:5302");
        let header = auth.header_value();
        let json = base64::engine::general_purpose::URL_SAFE
            .decode(&header)
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["username"], "berth");
        assert_eq!(value["password"], "s3cr?t>>");
        assert_eq!(value["serveraddress"], "127.0.0.1:5302");
        assert!(value.get("identitytoken").is_none());
        assert!(!header.contains('+') && !header.contains('/'));
    }

    #[test]
    fn debug_redacts_secrets() {
        let text = format!("{:?}", RegistryAuth::basic("berth", "hunter2", "r"));
        assert!(
            text.contains("berth") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[test]
    fn reads_auths_from_config_json() {
        let text = br#"{"auths":{
            "127.0.0.1:5302":{"auth":"YmVydGg6cGFzcw=="},
            "https://reg.example:443/v1/":{"username":"u","password":"p"},
            "tok.example":{"identitytoken":"t0k"}
        },"credsStore":"desktop"}"#;
        let config = DockerConfig::parse(Path::new("/c.json"), text).unwrap();
        let auth = config.auth_for("127.0.0.1:5302").unwrap().unwrap();
        assert_eq!(
            (auth.username.as_deref(), auth.password.as_deref()),
            (Some("berth"), Some("pass"))
        );
        let auth = config.auth_for("reg.example:443").unwrap().unwrap();
        assert_eq!(auth.username.as_deref(), Some("u"));
        let auth = config.auth_for("tok.example").unwrap().unwrap();
        assert_eq!(auth.identity_token.as_deref(), Some("t0k"));
        assert!(config.auth_for("127.0.0.1:5301").unwrap().is_none());
        let auth = config
            .auth_for_image("127.0.0.1:5302/team/app:1.0")
            .unwrap()
            .unwrap();
        assert_eq!(auth.server_address.as_deref(), Some("127.0.0.1:5302"));
        assert!(config.auth_for_image("library/app").unwrap().is_none());
    }

    #[test]
    fn bad_config_files_say_what_is_wrong() {
        let err = DockerConfig::parse(Path::new("/c.json"), b"{")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/c.json") && err.contains("not a Docker config file"),
            "{err}"
        );
        let config =
            DockerConfig::parse(Path::new("/c.json"), br#"{"auths":{"r":{"auth":"!!"}}}"#).unwrap();
        let err = config.auth_for("r").unwrap_err().to_string();
        assert!(err.contains("not base64") && err.contains("for r"), "{err}");
        let config = DockerConfig::parse(
            Path::new("/c.json"),
            br#"{"auths":{"r":{"auth":"bm9jb2xvbg=="}}}"#,
        )
        .unwrap();
        assert!(config
            .auth_for("r")
            .unwrap_err()
            .to_string()
            .contains("user:password"));
        let err = DockerConfig::load(Path::new("/nonexistent/config.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/config.json") && err.contains("cannot read"),
            "{err}"
        );
    }
}
