//! [`FetcherAdapter`]: the [`Fetch`] seam over `berth-fetcher`.

use std::sync::Arc;

use berth_fetcher::{Checksum, FetchRequest, Fetcher, UriSpec};

use crate::engine::BoxFut;
use crate::id::ContainerId;
use crate::seams::{Fetch, FetchPhase, FetchProgress, FetchProgressFn};
use crate::spec::Uri;

/// [`Fetch`] over `berth-fetcher`.
#[derive(Debug, Clone)]
pub struct FetcherAdapter {
    fetcher: Arc<Fetcher>,
}

impl FetcherAdapter {
    /// Fetches with `fetcher`.
    pub fn new(fetcher: Arc<Fetcher>) -> FetcherAdapter {
        FetcherAdapter { fetcher }
    }
}

/// A fetcher event in the seam's terms.
fn fetch_progress(ev: &berth_fetcher::ProgressEvent) -> FetchProgress {
    use berth_fetcher::Phase as P;
    FetchProgress {
        index: ev.index,
        uri: ev.uri.to_string(),
        phase: match ev.phase {
            P::Downloading => FetchPhase::Downloading,
            P::Verifying => FetchPhase::Verifying,
            P::Extracting => FetchPhase::Extracting,
            P::Cached => FetchPhase::Cached,
            P::Done => FetchPhase::Done,
            // A phase this build does not know yet: still work in progress.
            _ => FetchPhase::Downloading,
        },
        bytes_done: ev.bytes_done,
        bytes_total: ev.bytes_total,
        elapsed: ev.elapsed,
    }
}

fn uri_spec(u: &Uri) -> Result<UriSpec, String> {
    let mut spec = UriSpec::new(u.value.clone())
        .executable(u.executable)
        .extract(u.extract)
        .cache(u.cache);
    if let Some(out) = &u.output_file {
        spec = spec.output_file(out.clone());
    }
    if let Some(sum) = &u.checksum {
        let parsed: Checksum = sum
            .parse()
            .map_err(|e| format!("URI '{}' has an invalid checksum '{sum}': {e}", u.value))?;
        spec = spec.checksum(parsed);
    }
    Ok(spec)
}

impl Fetch for FetcherAdapter {
    fn fetch<'a>(
        &'a self,
        container: &'a ContainerId,
        uris: &'a [Uri],
        sandbox: &'a std::path::Path,
        user: Option<&'a str>,
        progress: FetchProgressFn,
    ) -> BoxFut<'a, Result<(), String>> {
        Box::pin(async move {
            let mut request = FetchRequest::new(sandbox);
            for u in uris {
                request = request.uri(uri_spec(u)?);
            }
            if let Some(user) = user {
                request = request.user(user);
            }
            // The fetcher traces every event itself; here they only become the container's status.
            request = request.on_progress(move |ev| progress(fetch_progress(ev)));
            match self.fetcher.fetch(request).await {
                Ok(report) => {
                    tracing::info!(container_id = %container, uris = report.fetched.len(), "fetched URIs");
                    Ok(())
                }
                // One line per failed URI, joined so the launch failure stays one line.
                Err(failure) => Err(failure.to_string().replace('\n', "; ")),
            }
        })
    }

    fn check(&self, uris: &[Uri]) -> Result<(), String> {
        let mut refused = Vec::new();
        for u in uris {
            // Every fetcher error names the URI (or the local file it names) already.
            let checked = uri_spec(u)
                .and_then(|spec| self.fetcher.check_uri(&spec).map_err(|e| e.to_string()));
            if let Err(e) = checked {
                refused.push(e);
            }
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(refused.join("; "))
        }
    }

    fn discard_partials(&self, sandbox: &std::path::Path) {
        // The fetcher owns the naming of its staging entries; it removes what a fetch killed
        // with its process left behind.
        match berth_fetcher::remove_leftover_staging(sandbox) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(sandbox = %sandbox.display(), removed = n, "removed partial fetches left by a killed agent")
            }
            Err(e) => {
                tracing::warn!(sandbox = %sandbox.display(), error = %e, "cannot remove partial fetches")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_refuses_local_sources_naming_the_uri_and_lets_others_through() {
        let fetcher = Arc::new(
            berth_fetcher::Fetcher::builder()
                .local_sources_hint("use --allowed-fetch-path DIR")
                .build()
                .unwrap(),
        );
        let a = FetcherAdapter::new(fetcher);
        a.check(&[Uri::new("http://127.0.0.1:1/app.tgz")]).unwrap();
        let e = a
            .check(&[
                Uri::new("http://127.0.0.1:1/app.tgz"),
                Uri::new("/etc/shadow"),
                Uri::new("file:///dev/zero"),
            ])
            .unwrap_err();
        assert!(
            e.contains("local source '/etc/shadow' is refused")
                && e.contains("local source '/dev/zero' (URI 'file:///dev/zero') is refused")
                && e.contains("--allowed-fetch-path"),
            "{e}"
        );
        let mut escaping = Uri::new("http://127.0.0.1:1/app.tgz");
        escaping.output_file = Some("../../etc/cron.d/x".into());
        let e = a.check(&[escaping]).unwrap_err();
        assert!(e.contains("'..'"), "{e}");
    }

    #[test]
    fn discarding_partials_removes_only_the_fetchers_staging() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join(".berth-fetch-x1/inner")).unwrap();
        std::fs::write(tmp.path().join(".berth-fetch-x1/inner/part"), b"half").unwrap();
        std::fs::write(tmp.path().join("kept.txt"), b"user data").unwrap();
        let fetcher = Arc::new(berth_fetcher::Fetcher::builder().build().unwrap());
        FetcherAdapter::new(fetcher).discard_partials(tmp.path());
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["kept.txt"]);
    }
}
