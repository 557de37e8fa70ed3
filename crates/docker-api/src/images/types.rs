//! Image types: inspect, list, remove, prune, import.

use std::collections::HashMap;

use serde::Deserialize;

use crate::auth::RegistryAuth;
use crate::query::Filters;
use crate::serde_util::null_default;

/// An image's details (`GET /images/{name}/json`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ImageInspect {
    /// Image ID (`sha256:...`).
    #[serde(default)]
    pub id: String,
    /// Tags naming it (`repo:tag`).
    #[serde(default, deserialize_with = "null_default")]
    pub repo_tags: Vec<String>,
    /// Registry digests (`repo@sha256:...`), set once pushed or pulled.
    #[serde(default, deserialize_with = "null_default")]
    pub repo_digests: Vec<String>,
    /// Parent image ID (empty for imported or pulled images).
    #[serde(default)]
    pub parent: Option<String>,
    /// Commit message / import message.
    #[serde(default)]
    pub comment: Option<String>,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created: Option<String>,
    /// Default container configuration of the image.
    #[serde(default)]
    pub config: Option<ImageConfig>,
    /// CPU architecture.
    #[serde(default)]
    pub architecture: Option<String>,
    /// Operating system.
    #[serde(default)]
    pub os: Option<String>,
    /// Size in bytes.
    #[serde(default)]
    pub size: i64,
    /// Layers.
    #[serde(default, rename = "RootFS")]
    pub root_fs: Option<RootFs>,
}

/// The container defaults an image carries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ImageConfig {
    /// Default user.
    #[serde(default)]
    pub user: Option<String>,
    /// Default environment (`KEY=value`).
    #[serde(default, deserialize_with = "null_default")]
    pub env: Vec<String>,
    /// Default command.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: HashMap<String, String>,
    /// Stop signal.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Exposed ports (`80/tcp`).
    #[serde(default, deserialize_with = "null_default")]
    pub exposed_ports: HashMap<String, serde_json::Value>,
}

/// An image's layers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RootFs {
    /// `layers`.
    #[serde(default, rename = "Type")]
    pub kind: String,
    /// Layer diff IDs.
    #[serde(default, deserialize_with = "null_default")]
    pub layers: Vec<String>,
}

/// One image of a list (`GET /images/json`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ImageSummary {
    /// Image ID.
    #[serde(default)]
    pub id: String,
    /// Parent ID.
    #[serde(default)]
    pub parent_id: String,
    /// Tags.
    #[serde(default, deserialize_with = "null_default")]
    pub repo_tags: Vec<String>,
    /// Digests.
    #[serde(default, deserialize_with = "null_default")]
    pub repo_digests: Vec<String>,
    /// Creation time, Unix seconds.
    #[serde(default)]
    pub created: i64,
    /// Size in bytes.
    #[serde(default)]
    pub size: i64,
    /// Labels.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: HashMap<String, String>,
    /// Containers using it (-1 when not computed).
    #[serde(default)]
    pub containers: i64,
}

/// Options of [`Images::list`](crate::Images::list).
#[derive(Debug, Clone, Default)]
pub struct ListImagesOptions {
    /// Include intermediate images.
    pub all: bool,
    /// Filters: `reference=repo:*`, `label=k=v`, `dangling=true`, `before=`, `since=`.
    pub filters: Filters,
    /// Fill in `repo_digests`.
    pub digests: bool,
}

/// What removing an image did: one entry per untagged reference or deleted layer.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ImageDeleteItem {
    /// A reference that was removed.
    #[serde(default)]
    pub untagged: Option<String>,
    /// An image or layer ID that was deleted.
    #[serde(default)]
    pub deleted: Option<String>,
}

/// Options of [`Images::remove`](crate::Images::remove).
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoveImageOptions {
    /// Remove even if stopped containers use it, and untag all its references.
    pub force: bool,
    /// Keep untagged parents.
    pub no_prune: bool,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ImagePruneReport {
    /// What was untagged and deleted.
    #[serde(default, deserialize_with = "null_default")]
    pub images_deleted: Vec<ImageDeleteItem>,
    /// Bytes freed.
    #[serde(default)]
    pub space_reclaimed: u64,
}

/// Options of [`Images::import`](crate::Images::import).
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Repository to tag the result with, e.g. `berth-test/busybox`.
    pub repo: Option<String>,
    /// Tag (with `repo`), e.g. `latest`.
    pub tag: Option<String>,
    /// Dockerfile instructions applied to the image, e.g. `ENTRYPOINT ["echo"]`, `CMD ["inky"]`,
    /// `ENV K=v`, `WORKDIR /`, `LABEL k=v`.
    pub changes: Vec<String>,
    /// Commit message.
    pub message: Option<String>,
    /// Platform (`linux/amd64`).
    pub platform: Option<String>,
}

/// The image an import made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportedImage {
    /// Image ID (`sha256:...`).
    pub id: String,
}

/// Options of [`Images::pull`](crate::Images::pull).
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Credentials for the image's registry.
    pub auth: Option<RegistryAuth>,
    /// Platform (`linux/amd64`).
    pub platform: Option<String>,
}
