//! Error precedence on `/api/v1` as a Mesos agent has it: a request whose `Accept` allows only a
//! streaming answer (`application/recordio`) is refused with 406 only once its call is known and
//! has no streaming answer; a malformed call, or a streaming call Berth does not support, gets its
//! own answer first. An `Accept` nothing can satisfy is refused before the call is read.

use berth_e2e::Agent;

async fn post(agent: &Agent, accept: &str, body: &str) -> (u16, String, String) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1", agent.url))
        .header("content-type", "application/json")
        .header("accept", accept)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_accept_is_judged_after_the_call_as_mesos_does() {
    const T: &str = "e2e-mesos-negotiation";
    let agent = Agent::start(T, &[]).await;
    const RECORDIO: &str = "application/recordio";

    // A call with no streaming answer: 406 naming the call.
    for call in ["GET_HEALTH", "GET_VERSION", "GET_CONTAINERS"] {
        let (status, _, body) = post(&agent, RECORDIO, &format!(r#"{{"type":"{call}"}}"#)).await;
        assert_eq!(status, 406, "{call}: {body}");
        assert!(
            body.contains(call) && body.contains("application/json"),
            "{body}"
        );
    }
    // A streaming call whose payload is missing: its own 400, not 406.
    let (status, _, body) = post(
        &agent,
        RECORDIO,
        r#"{"type":"LAUNCH_NESTED_CONTAINER_SESSION"}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("'launch_nested_container_session'"), "{body}");
    // A malformed call or an unknown field: the call's own 400 comes first.
    let (status, _, body) = post(&agent, RECORDIO, "{not json").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("malformed JSON"), "{body}");
    let (status, _, body) = post(&agent, RECORDIO, r#"{"type":"GET_HEALTH","bogus":1}"#).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bogus"), "{body}");

    // JSON wins when Accept allows it too.
    let (status, content_type, body) = post(
        &agent,
        "application/recordio, application/json",
        r#"{"type":"GET_HEALTH"}"#,
    )
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/json"),
        "{body}"
    );

    // Nothing Berth answers in: 406 before the call is read, as Mesos's first Accept check.
    let (status, _, body) = post(&agent, "text/html", "{not json").await;
    assert_eq!(status, 406, "{body}");
}
