//! System calls: ping, version, info and the event stream.

mod types;

pub use types::{
    Event, EventActor, EventsOptions, Info, Ping, RegistryConfig, Version, VersionComponent,
};

use crate::client::{Call, Docker};
use crate::error::Result;
use crate::query::PathAndQuery;
use crate::stream::JsonStream;
use crate::time::unix_seconds_nanos;

impl Docker {
    /// Checks the daemon answers (`GET /_ping`) and reads what its headers say.
    pub async fn ping(&self) -> Result<Ping> {
        let (headers, _) = self.bytes(Call::get("/_ping").unversioned()).await?;
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Ping {
            api_version: header("api-version").and_then(|v| v.parse().ok()),
            os_type: header("ostype"),
            experimental: header("docker-experimental").is_some_and(|v| v == "true"),
            builder_version: header("builder-version"),
        })
    }

    /// The daemon's version (`GET /version`).
    pub async fn version(&self) -> Result<Version> {
        self.json(Call::get("/version")).await
    }

    /// System-wide information (`GET /info`).
    pub async fn info(&self) -> Result<Info> {
        self.json(Call::get("/info")).await
    }

    /// The daemon's events as they happen (`GET /events`). Untimed; runs until `until` passes,
    /// the daemon closes it, or the stream is dropped (which closes the connection).
    pub fn events(&self, options: &EventsOptions) -> JsonStream<Event> {
        let path = PathAndQuery::new("/events")
            .opt("since", options.since.map(unix_seconds_nanos))
            .opt("until", options.until.map(unix_seconds_nanos))
            .filters(&options.filters)
            .into_string();
        let docker = self.clone();
        JsonStream::new(
            Box::pin(async move { Ok(docker.open(Call::get(path)).await?.body) }),
            "an event",
        )
    }
}
