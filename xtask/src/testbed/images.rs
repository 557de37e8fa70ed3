//! The test images: imported through berth-docker-api, pushed to both registries.

use berth_docker_api::{
    Docker, Filters, ImportOptions, ListContainersOptions, RegistryAuth, RemoveContainerOptions,
    RemoveImageOptions,
};
use berth_testbed::{Testbed, TEST_LABEL};

use super::registry::Registry;
use crate::util::{self, Result};

/// Size of the large image's random layer: big enough that a throttled pull can be caught in flight.
const LARGE_BYTES: usize = 256 << 20;

struct Spec<'a> {
    name: &'a str,
    changes: Vec<String>,
    extra: Option<(&'a str, usize)>,
    /// Kept in the daemon after the push (the large one is not, so that pulling it does real work).
    keep_local: bool,
}

fn specs(tb: &Testbed) -> [Spec<'_>; 3] {
    [
        Spec {
            name: &tb.images.busybox,
            changes: vec!["CMD [\"sh\"]".into()],
            extra: None,
            keep_local: true,
        },
        Spec {
            name: &tb.images.echo,
            changes: vec!["ENTRYPOINT [\"echo\"]".into(), "CMD [\"inky\"]".into()],
            extra: None,
            keep_local: true,
        },
        Spec {
            name: &tb.images.large,
            changes: vec!["CMD [\"sh\"]".into()],
            extra: Some(("data/random.bin", LARGE_BYTES)),
            keep_local: false,
        },
    ]
}

fn auth_for(r: &Registry) -> Option<RegistryAuth> {
    r.auth
        .as_ref()
        .map(|(u, p)| RegistryAuth::basic(u, p, &r.addr))
}

/// Makes every test image present where the record says it is; builds only what is missing.
pub async fn ensure(docker: &Docker, tb: &Testbed, registries: &[Registry]) -> Result<()> {
    for spec in specs(tb) {
        let local = docker.images().inspect(spec.name).await.is_ok();
        let pushed = registries.iter().all(|r| r.has(spec.name));
        if pushed && (local || !spec.keep_local) {
            util::step(format!("image {} ready", spec.name));
            continue;
        }
        if !local {
            util::step(format!(
                "building image {} (import of a busybox rootfs)",
                spec.name
            ));
            let tarball = berth_testbed::busybox_rootfs(spec.extra)?;
            let (repo, tag) = spec
                .name
                .rsplit_once(':')
                .expect("test image names carry a tag");
            let options = ImportOptions {
                repo: Some(repo.into()),
                tag: Some(tag.into()),
                changes: spec.changes.clone(),
                ..ImportOptions::default()
            };
            docker
                .images()
                .import(tarball, &options)
                .await
                .map_err(|e| format!("importing {}: {e}", spec.name))?;
        }
        for r in registries {
            if r.has(spec.name) {
                continue;
            }
            let remote = format!("{}/{}", r.addr, spec.name);
            let (repo, tag) = remote.rsplit_once(':').expect("tagged");
            docker
                .images()
                .tag(spec.name, repo, tag)
                .await
                .map_err(|e| format!("tagging {remote}: {e}"))?;
            util::step(format!("pushing {remote}"));
            docker
                .images()
                .push_and_wait(&remote, auth_for(r).as_ref())
                .await
                .map_err(|e| format!("pushing {remote}: {e}"))?;
            // The registry name stays out of the daemon: tests that pull it must start from absence.
            docker
                .images()
                .remove(&remote, RemoveImageOptions::default())
                .await
                .map_err(|e| format!("untagging {remote}: {e}"))?;
        }
        if !spec.keep_local {
            remove_image(docker, spec.name).await?;
        }
    }
    Ok(())
}

async fn remove_image(docker: &Docker, name: &str) -> Result<()> {
    match docker
        .images()
        .remove(
            name,
            RemoveImageOptions {
                force: true,
                no_prune: false,
            },
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(format!("removing image {name}: {e}")),
    }
}

/// Removes test containers and every image named `berth-test/*` (also under a registry prefix).
pub async fn remove_all(docker: &Docker) -> Result<()> {
    let options = ListContainersOptions {
        all: true,
        filters: Filters::new().label(TEST_LABEL),
        ..ListContainersOptions::default()
    };
    let containers = docker
        .containers()
        .list(&options)
        .await
        .map_err(|e| format!("listing test containers: {e}"))?;
    for c in containers {
        let _ = docker
            .containers()
            .remove(
                &c.id,
                RemoveContainerOptions {
                    force: true,
                    volumes: true,
                },
            )
            .await;
    }
    let images = docker
        .images()
        .list(&berth_docker_api::ListImagesOptions::default())
        .await
        .map_err(|e| format!("listing images: {e}"))?;
    for image in images {
        for tag in image.repo_tags.iter().filter(|t| is_test_image(t)) {
            remove_image(docker, tag).await?;
        }
    }
    util::step("removed test containers and images");
    Ok(())
}

fn is_test_image(reference: &str) -> bool {
    reference.starts_with("berth-test/")
        || reference
            .split_once('/')
            .is_some_and(|(_, rest)| rest.starts_with("berth-test/"))
}

/// Lines for `testbed status`.
pub async fn status(docker: &Docker, registries: &[Registry]) -> Vec<String> {
    let tb =
        match std::fs::read_to_string(berth_testbed::state_dir().join(berth_testbed::STATE_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<Testbed>(&t).ok())
        {
            Some(tb) => tb,
            None => return vec![],
        };
    let mut lines = Vec::new();
    for spec in specs(&tb) {
        let local = docker.images().inspect(spec.name).await.is_ok();
        let where_: Vec<_> = registries
            .iter()
            .filter(|r| r.has(spec.name))
            .map(|r| r.addr.as_str())
            .collect();
        lines.push(format!(
            "image          {:28} daemon: {:3}  registries: {}",
            spec.name,
            if local { "yes" } else { "no" },
            if where_.is_empty() {
                "none".to_string()
            } else {
                where_.join(", ")
            }
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::is_test_image;

    #[test]
    fn test_images_are_recognised_with_and_without_registry() {
        assert!(is_test_image("berth-test/busybox:latest"));
        assert!(is_test_image("127.0.0.1:5301/berth-test/large:latest"));
        assert!(!is_test_image("busybox:latest"));
        assert!(!is_test_image("library/berth-test:latest"));
    }
}
