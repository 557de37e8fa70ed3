//! Image calls: inspect, list, pull, push, import, tag, remove, prune.

mod progress;
mod types;

pub use progress::{
    ErrorDetail, LayerPhase, LayerProgress, ProgressDetail, ProgressMessage, ProgressStream,
    PullProgress, PullStream, PullTotals, PullTracker,
};
pub use types::{
    ImageConfig, ImageDeleteItem, ImageInspect, ImagePruneReport, ImageSummary, ImportOptions,
    ImportedImage, ListImagesOptions, PullOptions, RemoveImageOptions, RootFs,
};

use futures_util::StreamExt;

use crate::auth::RegistryAuth;
use crate::client::{Call, Docker};
use crate::error::{Error, Result, Target};
use crate::query::{Filters, PathAndQuery};
use crate::reference::ImageReference;
use crate::stream::JsonStream;
use crate::transport::body::RequestBody;

/// Image calls; get one from [`Docker::images`].
#[derive(Debug, Clone, Copy)]
pub struct Images<'a> {
    docker: &'a Docker,
}

impl Docker {
    /// Image calls.
    pub fn images(&self) -> Images<'_> {
        Images { docker: self }
    }
}

/// `X-Registry-Auth` for a push or pull. The daemon insists on the header for pushes even
/// without credentials, so an empty JSON object stands for "anonymous".
fn auth_header(auth: Option<&RegistryAuth>) -> String {
    auth.map(RegistryAuth::header_value)
        .unwrap_or_else(|| RegistryAuth::default().header_value())
}

/// What a pull of `r` fetches, spelled out: `name@digest` or `name:tag` (default `latest`).
fn pulled_reference(r: &ImageReference) -> String {
    match &r.digest {
        Some(digest) => format!("{}@{digest}", r.name()),
        None => format!("{}:{}", r.name(), r.tag_or_digest()),
    }
}

impl Images<'_> {
    /// An image's details, by reference or ID.
    pub async fn inspect(&self, name: &str) -> Result<ImageInspect> {
        let path = PathAndQuery::new("/images")
            .image(name)
            .literal("/json")
            .into_string();
        self.docker
            .json(Call::get(path).target(Target::image(name)))
            .await
    }

    /// Lists images.
    pub async fn list(&self, options: &ListImagesOptions) -> Result<Vec<ImageSummary>> {
        let path = PathAndQuery::new("/images/json")
            .flag("all", options.all)
            .flag("digests", options.digests)
            .filters(&options.filters)
            .into_string();
        self.docker.json(Call::get(path)).await
    }

    /// Pulls `reference` (`latest` when it names no tag or digest) from its registry.
    ///
    /// The stream reports per-layer progress and totals, ends when the image is in place, and
    /// ends with an error when the pull fails (a missing image is [`Error::NotFound`] naming the
    /// image and registry). Untimed: drop the stream to abort the pull in the daemon.
    pub fn pull(&self, reference: &str, options: &PullOptions) -> PullStream {
        let parsed = ImageReference::parse(reference);
        let docker = self.docker.clone();
        let auth = options.auth.as_ref().map(RegistryAuth::header_value);
        let platform = options.platform.clone();
        let (display, registry) = match &parsed {
            Ok(r) => (pulled_reference(r), r.registry_display()),
            Err(_) => (reference.to_owned(), String::new()),
        };
        let target = Target::Image {
            name: display.clone(),
            registry: Some(registry.clone()),
        };
        let start = async move {
            let r = parsed?;
            let path = PathAndQuery::new("/images/create")
                .param("fromImage", r.name())
                .param("tag", r.tag_or_digest())
                .opt("platform", platform)
                .into_string();
            Ok(docker
                .open(Call::post(path).target(target).auth(auth))
                .await?
                .body)
        };
        let inner = ProgressStream::new(
            JsonStream::new(Box::pin(start), "pull progress"),
            "POST /images/create".to_owned(),
            Some((display.clone(), registry)),
        );
        PullStream::new(inner, display)
    }

    /// Pushes `name` (`repo[:tag]`; all tags of `repo` when none) to its registry.
    ///
    /// Failures reported inside the stream (refused credentials, a registry error) end it with
    /// [`Error::Stream`]. Untimed: drop the stream to abort.
    pub fn push(&self, name: &str, auth: Option<&RegistryAuth>) -> ProgressStream {
        let parsed = ImageReference::parse(name);
        let docker = self.docker.clone();
        let header = auth_header(auth);
        let registry = parsed
            .as_ref()
            .map(ImageReference::registry_display)
            .unwrap_or_default();
        let target = Target::Image {
            name: name.to_owned(),
            registry: Some(registry.clone()),
        };
        let start = async move {
            let r = parsed?;
            let path = PathAndQuery::new("/images")
                .image(&r.name())
                .literal("/push")
                .opt("tag", r.tag.as_deref().or(r.digest.as_deref()))
                .into_string();
            Ok(docker
                .open(Call::post(path).target(target).auth(Some(header)))
                .await?
                .body)
        };
        ProgressStream::new(
            JsonStream::new(Box::pin(start), "push progress"),
            format!("POST /images/{name}/push"),
            Some((name.to_owned(), registry)),
        )
    }

    /// Pushes and waits for the end; returns the pushed digest when the daemon reported it.
    pub async fn push_and_wait(
        &self,
        name: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<Option<String>> {
        let mut stream = self.push(name, auth);
        let mut digest = None;
        while let Some(message) = stream.next().await {
            let message = message?;
            if let Some(d) = message
                .aux
                .as_ref()
                .and_then(|a| a.get("Digest"))
                .and_then(|d| d.as_str())
            {
                digest = Some(d.to_owned());
            }
        }
        Ok(digest)
    }

    /// Creates an image from a root filesystem tarball (`POST /images/create?fromSrc=-`).
    ///
    /// The body is streamed as it is read, so the tarball may be larger than memory. Untimed
    /// (its length is the caller's); wrap it in a timeout if needed.
    pub async fn import(
        &self,
        tarball: impl Into<RequestBody>,
        options: &ImportOptions,
    ) -> Result<ImportedImage> {
        let mut path = PathAndQuery::new("/images/create")
            .param("fromSrc", "-")
            .opt("repo", options.repo.as_deref())
            .opt("tag", options.tag.as_deref())
            .opt("message", options.message.as_deref())
            .opt("platform", options.platform.as_deref());
        for change in &options.changes {
            path = path.param("changes", change);
        }
        let body = tarball.into();
        let docker = self.docker.clone();
        let start = async move {
            let call = Call::post(path.into_string()).body(body, "application/x-tar");
            Ok(docker.open(call).await?.body)
        };
        let mut stream = ProgressStream::new(
            JsonStream::new(Box::pin(start), "import progress"),
            "POST /images/create?fromSrc=-".to_owned(),
            None,
        );
        let mut id = None;
        while let Some(message) = stream.next().await {
            if let Some(status) = message?.status {
                if status.starts_with("sha256:") {
                    id = Some(status);
                }
            }
        }
        let id = id.ok_or_else(|| Error::Decode {
            request: "POST /images/create?fromSrc=-".to_owned(),
            expected: "an import result",
            reason: "the daemon did not report the new image's ID".to_owned(),
            text: String::new(),
        })?;
        Ok(ImportedImage { id })
    }

    /// Tags `source` (reference or ID) as `repo:tag`.
    pub async fn tag(&self, source: &str, repo: &str, tag: &str) -> Result<()> {
        let path = PathAndQuery::new("/images")
            .image(source)
            .literal("/tag")
            .param("repo", repo)
            .param("tag", tag)
            .into_string();
        self.docker
            .unit(Call::post(path).target(Target::image(source)))
            .await
    }

    /// Removes an image or one of its tags.
    pub async fn remove(
        &self,
        name: &str,
        options: RemoveImageOptions,
    ) -> Result<Vec<ImageDeleteItem>> {
        let path = PathAndQuery::new("/images")
            .image(name)
            .flag("force", options.force)
            .flag("noprune", options.no_prune)
            .into_string();
        self.docker
            .json(Call::delete(path).target(Target::image(name)))
            .await
    }

    /// Removes unused images: dangling ones only, unless `filters` has `dangling=false`.
    pub async fn prune(&self, filters: &Filters) -> Result<ImagePruneReport> {
        let path = PathAndQuery::new("/images/prune")
            .filters(filters)
            .into_string();
        self.docker.json(Call::post(path)).await
    }
}
