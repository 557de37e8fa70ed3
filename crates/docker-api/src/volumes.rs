//! Named volumes: inspect, list, remove. Containers create them through [`Mount`](crate::Mount)s
//! with [`VolumeOptions`](crate::VolumeOptions); these calls find and clean them up.

use std::collections::HashMap;

use serde::Deserialize;

use crate::client::{Call, Docker};
use crate::error::{Result, Target};
use crate::query::{Filters, PathAndQuery};
use crate::serde_util::null_default;

/// A volume (`GET /volumes/{name}`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// The driver that manages it, e.g. `local`.
    #[serde(default)]
    pub driver: String,
    /// Where the driver keeps it on the host.
    #[serde(default)]
    pub mountpoint: String,
    /// Its labels.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: HashMap<String, String>,
    /// The driver options it was created with.
    #[serde(default, deserialize_with = "null_default")]
    pub options: HashMap<String, String>,
}

#[derive(Deserialize)]
struct VolumeList {
    #[serde(rename = "Volumes", default, deserialize_with = "null_default")]
    volumes: Vec<Volume>,
}

/// Volume calls; get one from [`Docker::volumes`].
#[derive(Debug, Clone, Copy)]
pub struct Volumes<'a> {
    docker: &'a Docker,
}

impl Docker {
    /// Volume calls.
    pub fn volumes(&self) -> Volumes<'_> {
        Volumes { docker: self }
    }
}

impl Volumes<'_> {
    /// Inspects the volume `name`; a missing one is [`Error::NotFound`](crate::Error::NotFound)
    /// naming it.
    pub async fn inspect(&self, name: &str) -> Result<Volume> {
        let path = PathAndQuery::new("/volumes").segment(name).into_string();
        self.docker
            .json(Call::get(path).target(Target::Volume(name.to_owned())))
            .await
    }

    /// Lists volumes matching `filters` (`name=`, `label=k=v`, `driver=`, `dangling=true`).
    pub async fn list(&self, filters: &Filters) -> Result<Vec<Volume>> {
        let path = PathAndQuery::new("/volumes").filters(filters).into_string();
        let list: VolumeList = self.docker.json(Call::get(path)).await?;
        Ok(list.volumes)
    }

    /// Removes the volume `name`. In use by a container: [`Error::Conflict`](crate::Error::Conflict)
    /// unless `force`.
    pub async fn remove(&self, name: &str, force: bool) -> Result<()> {
        let path = PathAndQuery::new("/volumes")
            .segment(name)
            .flag("force", force)
            .into_string();
        self.docker
            .unit(Call::delete(path).target(Target::Volume(name.to_owned())))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_list_with_null_fields_parses() {
        let text = br#"{"Volumes":[{"Name":"v","Driver":"local","Mountpoint":"/var/lib/docker/volumes/v/_data","Labels":null,"Options":{"type":"tmpfs"},"Scope":"local","CreatedAt":"2026-11-27T22:00:00Z"}],"Warnings":null}"#;
        let list: VolumeList = serde_json::from_slice(text).unwrap();
        assert_eq!(list.volumes.len(), 1);
        assert_eq!(list.volumes[0].name, "v");
        assert!(list.volumes[0].labels.is_empty());
        assert_eq!(list.volumes[0].options["type"], "tmpfs");
        let empty: VolumeList = serde_json::from_slice(br#"{"Volumes":null}"#).unwrap();
        assert!(empty.volumes.is_empty());
    }
}
