//! Mesos's binary protobuf on `/api/v1`, against a real agent and daemon: every call Berth
//! answers is sent both as JSON and as `application/x-protobuf`; each answer is checked
//! strictly (JSON against Mesos's field tables; protobuf decoded with the Mesos definitions
//! Berth ships, no field number left unknown) and the two must carry the same content. The
//! calls that change containers are sent in protobuf only and checked against Docker's own
//! inspect. Hand-encoded bytes pin the wire format to Mesos's field numbers independently of
//! any protobuf library, and the media negotiation follows Mesos's order of checks.

#[path = "../../../crates/agent-bin/src/mesos_schema.rs"]
mod mesos_schema;

use berth_e2e::{docker_inspect, remove_test_containers, Agent, BytesResp};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::{json, Value};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn pool() -> DescriptorPool {
    let proto = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crates/agent-bin/proto");
    let set = protox::compile(["mesos/v1/agent/agent.proto"], [proto])
        .expect("the Mesos definitions compile");
    DescriptorPool::decode(set.encode_to_vec().as_slice()).expect("a descriptor set")
}

struct Wire {
    pool: DescriptorPool,
}

impl Wire {
    fn encode_call(&self, call: &Value) -> Vec<u8> {
        let desc = self
            .pool
            .get_message_by_name("mesos.v1.agent.Call")
            .unwrap();
        DynamicMessage::deserialize(desc, call)
            .unwrap_or_else(|e| panic!("{call} is not a Mesos Call: {e}"))
            .encode_to_vec()
    }

    /// A protobuf answer decoded as Mesos's `agent.Response`, as protobuf-JSON; fails on a
    /// field number the definitions do not have.
    fn decode_response(&self, what: &str, bytes: &[u8]) -> Value {
        let desc = self
            .pool
            .get_message_by_name("mesos.v1.agent.Response")
            .unwrap();
        let m = DynamicMessage::decode(desc, bytes)
            .unwrap_or_else(|e| panic!("{what}: not a Mesos Response: {e}"));
        assert_no_unknown_fields(what, &m);
        m.serialize_with_options(
            serde_json::value::Serializer,
            &SerializeOptions::new()
                .use_proto_field_name(true)
                .stringify_64_bit_integers(false)
                .skip_default_fields(true),
        )
        .unwrap()
    }
}

fn assert_no_unknown_fields(what: &str, m: &DynamicMessage) {
    let unknown: Vec<u32> = m.unknown_fields().map(|f| f.number()).collect();
    assert!(
        unknown.is_empty(),
        "{what}: {} carries unknown fields {unknown:?}",
        prost_reflect::ReflectMessage::descriptor(m).full_name()
    );
    for (_, v) in m.fields() {
        match v {
            prost_reflect::Value::Message(inner) => assert_no_unknown_fields(what, inner),
            prost_reflect::Value::List(items) => {
                for i in items {
                    if let prost_reflect::Value::Message(inner) = i {
                        assert_no_unknown_fields(what, inner);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Numbers compared by value (a `google.protobuf.Struct` carries every number as a double).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), normalized(v))).collect())
        }
        v => v.clone(),
    }
}

/// The shape of an answer: every key path, with arrays' items merged (for answers whose
/// values move between two calls: metrics, statistics).
fn shape(v: &Value, path: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                let p = format!("{path}.{k}");
                out.insert(p.clone());
                shape(v, &p, out);
            }
        }
        Value::Array(a) => {
            for v in a {
                shape(v, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

fn shape_of(v: &Value) -> std::collections::BTreeSet<String> {
    let mut out = Default::default();
    shape(v, "", &mut out);
    out
}

async fn call_protobuf(agent: &Agent, wire: &Wire, call: &Value) -> BytesResp {
    agent
        .post_bytes(
            &[("content-type", PROTOBUF), ("accept", PROTOBUF)],
            wire.encode_call(call),
        )
        .await
}

/// Every supported call in JSON and in protobuf: both strict, both the same content.
#[tokio::test(flavor = "multi_thread")]
async fn every_call_answers_the_same_in_json_and_protobuf() {
    const T: &str = "e2e-mesos-protobuf";
    remove_test_containers(T).await;
    let agent = Agent::start(T, &[]).await;
    let wire = Wire { pool: pool() };

    // Launched in protobuf: a running container with limits, and one that ends.
    let mut run = agent.launch_body("pb-run", json!({"value": "sleep 600"}), None);
    run["resources"] = json!([
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 96}}]);
    let r = call_protobuf(
        &agent,
        &wire,
        &json!({"type": "LAUNCH_CONTAINER", "launch_container": run}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body.is_empty(), "LAUNCH_CONTAINER answers no body");
    let done = agent.launch_body(
        "pb-done",
        json!({"value": "printf 'out\\000bytes'; exit 3"}),
        None,
    );
    let r = call_protobuf(
        &agent,
        &wire,
        &json!({"type": "LAUNCH_CONTAINER", "launch_container": done}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    agent.wait("pb-done").await;
    // Docker is the oracle for what the protobuf launch asked.
    let name = agent.docker_name("pb-run");
    let inspect = docker_inspect("container", &name).await.expect("launched");
    assert_eq!(
        inspect["HostConfig"]["Memory"],
        json!(96u64 << 20),
        "{name}"
    );

    let id = |v: &str| json!({"container_id": {"value": v}});
    let stable = [
        json!({"type": "GET_HEALTH"}),
        json!({"type": "GET_FLAGS"}),
        json!({"type": "GET_VERSION"}),
        json!({"type": "WAIT_CONTAINER", "wait_container": id("pb-done")}),
        json!({"type": "LIST_FILES", "list_files": {"path": "/containers/pb-done"}}),
        json!({"type": "READ_FILE", "read_file": {"path": "/containers/pb-done/stdout", "offset": 0}}),
        json!({"type": "READ_FILE", "read_file": {"path": "/containers/pb-done/stdout", "offset": 4, "length": 3}}),
    ];
    let moving = [
        json!({"type": "GET_METRICS", "get_metrics": {"timeout": {"nanoseconds": 1_000_000_000u64}}}),
        json!({"type": "GET_CONTAINERS", "get_containers": {"show_nested": false}}),
    ];
    for (call, exact) in stable
        .iter()
        .map(|c| (c, true))
        .chain(moving.iter().map(|c| (c, false)))
    {
        let what = call["type"].as_str().unwrap();
        let j = agent.call(call.clone()).await;
        assert_eq!(
            (j.status, j.content_type.as_str()),
            (200, JSON),
            "{what}: {j:?}"
        );
        let from_json = j.json();
        mesos_schema::check("agent.Response", &from_json)
            .unwrap_or_else(|e| panic!("{what} (JSON): {e}\n{from_json}"));
        let p = call_protobuf(&agent, &wire, call).await;
        assert_eq!(
            (p.status, p.content_type.as_str()),
            (200, PROTOBUF),
            "{what}: {}",
            p.text()
        );
        let from_protobuf = wire.decode_response(what, &p.body);
        mesos_schema::check("agent.Response", &from_protobuf)
            .unwrap_or_else(|e| panic!("{what} (protobuf): {e}\n{from_protobuf}"));
        if exact {
            assert_eq!(
                normalized(&from_protobuf),
                normalized(&from_json),
                "{what}: protobuf and JSON differ"
            );
        } else {
            assert_eq!(
                shape_of(&from_protobuf),
                shape_of(&from_json),
                "{what}: protobuf and JSON differ in shape"
            );
        }
    }
    // READ_FILE's bytes arrive raw in protobuf, NUL included.
    let p = call_protobuf(&agent, &wire, &stable[5]).await;
    assert!(
        p.body.windows(9).any(|w| w == b"out\0bytes"),
        "{:?}",
        p.body
    );

    // UPDATE_CONTAINER (Berth's call, number 1000) and KILL_CONTAINER in protobuf, checked
    // against Docker.
    let update = json!({"type": "UPDATE_CONTAINER", "update_container": {
        "container_id": {"value": "pb-run"},
        "resources": [{"name": "mem", "type": "SCALAR", "scalar": {"value": 128}}]}});
    let r = call_protobuf(&agent, &wire, &update).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let inspect = docker_inspect("container", &name).await.expect("running");
    assert_eq!(inspect["HostConfig"]["Memory"], json!(128u64 << 20));
    let kill = json!({"type": "KILL_CONTAINER", "kill_container": {
        "container_id": {"value": "pb-run"}, "signal": 9}});
    let r = call_protobuf(&agent, &wire, &kill).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ended = agent.wait("pb-run").await;
    assert_eq!(ended["state"], "TASK_KILLED", "{ended}");
    let inspect = docker_inspect("container", &name)
        .await
        .expect("kept until removed");
    assert_eq!(inspect["State"]["Running"], json!(false));
    let remove = json!({"type": "REMOVE_CONTAINER", "remove_container": id("pb-run")});
    let r = call_protobuf(&agent, &wire, &remove).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        docker_inspect("container", &name).await.is_none(),
        "REMOVE_CONTAINER in protobuf removed the Docker container"
    );
    remove_test_containers(T).await;
}

/// Bytes written by hand from Mesos's field numbers (no protobuf library involved): what any
/// Mesos client sends and expects.
#[tokio::test(flavor = "multi_thread")]
async fn the_wire_format_is_mesoss_by_hand() {
    const T: &str = "e2e-mesos-protobuf-wire";
    let agent = Agent::start(T, &[]).await;
    // Call { type (1) = GET_HEALTH (1) }
    let r = agent
        .post_bytes(
            &[("content-type", PROTOBUF), ("accept", PROTOBUF)],
            vec![0x08, 0x01],
        )
        .await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, PROTOBUF),
        "{}",
        r.text()
    );
    // Response { type (1) = GET_HEALTH (1), get_health (2) = { healthy (1) = true } }
    assert_eq!(r.body, [0x08, 0x01, 0x12, 0x02, 0x08, 0x01]);
    // The same call answered in JSON when Accept allows JSON (Mesos prefers it).
    let r = agent
        .post_bytes(
            &[
                ("content-type", PROTOBUF),
                ("accept", "application/x-protobuf, application/json"),
            ],
            vec![0x08, 0x01],
        )
        .await;
    assert_eq!(r.content_type, JSON);
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap(),
        json!({"type": "GET_HEALTH", "get_health": {"healthy": true}})
    );
    // Call { type = GET_VERSION (3) } -> Response { type (1) = GET_VERSION (3), get_version (4)
    // = { version_info (1) = { version (1) = "<version>" } }, berth (1000) = {...} }
    let r = agent
        .post_bytes(
            &[("content-type", PROTOBUF), ("accept", PROTOBUF)],
            vec![0x08, 0x03],
        )
        .await;
    let version = env!("CARGO_PKG_VERSION").as_bytes();
    let mut want = vec![0x08, 0x03, 0x22, (version.len() + 4) as u8, 0x0a];
    want.push((version.len() + 2) as u8);
    want.extend_from_slice(&[0x0a, version.len() as u8]);
    want.extend_from_slice(version);
    assert!(
        r.body.starts_with(&want),
        "{:x?} does not start {want:x?}",
        r.body
    );
    // Field 1000, length-delimited: tag (1000 << 3 | 2) = 0xc2 0x3e.
    assert_eq!(&r.body[want.len()..want.len() + 2], &[0xc2, 0x3e]);

    // Refused by the call's own rules, in Mesos's words for a body that is not a Call.
    let r = agent
        .post_bytes(&[("content-type", PROTOBUF)], vec![0xff, 0xff, 0xff])
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("Failed to parse body into Call protobuf"),
        "{}",
        r.text()
    );
    // WAIT_CONTAINER (23) with its payload (14) holding ContainerID (1) { value (1) = "x",
    // field 9 = 1 }: a field number Mesos does not define is refused by its path.
    let r = agent
        .post_bytes(
            &[("content-type", PROTOBUF)],
            vec![
                0x08, 23, 0x72, 0x07, 0x0a, 0x05, 0x0a, 0x01, b'x', 0x48, 0x01,
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("wait_container.container_id.9"),
        "{}",
        r.text()
    );
    // A refused Mesos field is named, as in JSON: Resource.shared (10) on a launch.
    let wire = Wire { pool: pool() };
    let mut body = agent.launch_body("pb-shared", json!({"value": "true"}), None);
    body["resources"] =
        json!([{"name": "mem", "type": "SCALAR", "scalar": {"value": 64}, "shared": {}}]);
    let r = call_protobuf(
        &agent,
        &wire,
        &json!({"type": "LAUNCH_CONTAINER", "launch_container": body}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("shared"), "{}", r.text());
}

/// Media negotiation in Mesos's order: headers first (400/415/406), then the call, then
/// whether the call streams.
#[tokio::test(flavor = "multi_thread")]
async fn negotiation_follows_mesoss_order() {
    const T: &str = "e2e-mesos-protobuf-negotiation";
    let agent = Agent::start(T, &[]).await;
    let health = br#"{"type":"GET_HEALTH"}"#.to_vec();
    // (headers, body, status, a word the answer names)
    type Case<'a> = (&'a [(&'a str, &'a str)], Vec<u8>, u16, &'a str);
    let cases: &[Case<'_>] = &[
        (&[], health.clone(), 400, "Content-Type"),
        (
            &[("content-type", "text/plain")],
            health.clone(),
            415,
            "application/x-protobuf",
        ),
        (
            &[("content-type", JSON), ("accept", "text/html")],
            health.clone(),
            406,
            "Accept",
        ),
        (
            &[("content-type", JSON), ("message-accept", JSON)],
            health.clone(),
            406,
            "Message-Accept",
        ),
        (
            &[("content-type", JSON), ("message-content-type", JSON)],
            health.clone(),
            415,
            "Message-Content-Type",
        ),
        (
            &[("content-type", "application/recordio")],
            health.clone(),
            400,
            "Message-Content-Type",
        ),
        // A streaming request: the first record is the call, then the call decides (415).
        (
            &[
                ("content-type", "application/recordio"),
                ("message-content-type", JSON),
            ],
            [b"21\n".as_slice(), &health].concat(),
            415,
            "GET_HEALTH",
        ),
        (
            &[
                ("content-type", "application/recordio"),
                ("message-content-type", JSON),
            ],
            b"x\n{}".to_vec(),
            400,
            "RecordIO",
        ),
        // A streaming answer for a call that has none: 406 once the call is known.
        (
            &[
                ("content-type", JSON),
                ("accept", "application/recordio"),
                ("message-accept", PROTOBUF),
            ],
            health.clone(),
            406,
            "GET_HEALTH",
        ),
        (
            &[
                ("content-type", JSON),
                ("accept", "application/recordio"),
                ("message-accept", "text/html"),
            ],
            health.clone(),
            406,
            "Message-Accept",
        ),
        // q=0 refuses JSON, so protobuf it is.
        (
            &[
                ("content-type", JSON),
                ("accept", "application/json;q=0, */*"),
            ],
            health.clone(),
            200,
            "",
        ),
    ];
    for (headers, body, status, needle) in cases {
        let r = agent.post_bytes(headers, body.clone()).await;
        assert_eq!(r.status, *status, "{headers:?}: {}", r.text());
        assert!(r.text().contains(needle), "{headers:?}: {}", r.text());
    }
    let r = agent
        .post_bytes(
            &[
                ("content-type", JSON),
                ("accept", "application/json;q=0, */*"),
            ],
            health,
        )
        .await;
    assert_eq!(r.content_type, PROTOBUF);
    assert_eq!(r.body, [0x08, 0x01, 0x12, 0x02, 0x08, 0x01]);
}
