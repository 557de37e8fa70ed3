//! HTTPS through rustls against a real TLS server started by the test.

mod common;

use std::fs;

use berth_fetcher::{FetchError, FetchRequest, Fetcher, UriSpec};
use common::*;

#[tokio::test]
async fn https_download_with_a_trusted_internal_ca() {
    let (srv, ca_pem) = Server::start_tls().await;
    let tgz = gzip(&tar_bytes(&[TarEntry::File(
        "secure.txt",
        b"over tls",
        0o644,
    )]));
    let url = srv.route("/secure.tgz", Behavior::Ok(tgz.clone()));
    assert!(url.starts_with("https://"));

    // Not trusted by default: a TLS error naming the URI, not retried into success.
    let sb = sandbox();
    let untrusted = Fetcher::builder().build().unwrap();
    let e = untrusted
        .fetch(FetchRequest::new(sb.path()).uri(UriSpec::new(&url)))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e.failures[0].error, FetchError::Http { .. }),
        "{msg}"
    );
    assert!(msg.contains(&url) && msg.contains("certificate"), "{msg}");
    assert!(listing(sb.path()).is_empty());

    let f = Fetcher::builder()
        .add_root_certificate_pem(ca_pem)
        .build()
        .unwrap();
    f.fetch(
        FetchRequest::new(sb.path())
            .uri(UriSpec::new(&url).checksum(sha256(&tgz).parse().unwrap())),
    )
    .await
    .unwrap();
    assert_eq!(fs::read(sb.path().join("secure.txt")).unwrap(), b"over tls");
}

#[test]
fn invalid_root_certificate_is_refused_at_build() {
    let e = Fetcher::builder()
        .add_root_certificate_pem("not a pem")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("root certificate #1"), "{e}");
}
