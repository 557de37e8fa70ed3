//! Mesos's binary protobuf (`application/x-protobuf`) on the v1 API, with Mesos's field
//! numbers.
//!
//! The message definitions are Berth's transcription of Mesos's (`proto/mesos/v1/`), compiled
//! at build time by protox into a descriptor set embedded here ([`pool`]). Requests and answers
//! are transcoded through protobuf-JSON with prost-reflect's dynamic messages: a protobuf
//! `Call` becomes the JSON the strict parser ([`super::parse_call_value`]) reads, so both media
//! share every check and every error message; a JSON answer becomes a protobuf `Response`.
//! The cost is one transcoding per protobuf request, which is small beside a Docker call and
//! keeps one parser instead of two that could drift apart.

use std::sync::OnceLock;

use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions,
    Value as ProtoValue,
};
use serde_json::Value;

use super::call::{parse_call_value, Call};
use crate::error::ApiError;

const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mesos_v1_descriptors.bin"));

/// The full name of the v1 agent `Call` message.
pub const CALL: &str = "mesos.v1.agent.Call";
/// The full name of the v1 agent `Response` message.
pub const RESPONSE: &str = "mesos.v1.agent.Response";

/// Every message Berth knows of Mesos's v1 API, from `proto/mesos/v1/`.
///
/// ```
/// let call = berth::api::proto::pool().get_message_by_name("mesos.v1.agent.Call").unwrap();
/// assert_eq!(call.get_field_by_name("launch_container").unwrap().number(), 13);
/// ```
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTORS).expect("build.rs wrote a valid descriptor set")
    })
}

/// The descriptor of the message called `name` (`mesos.v1.ContainerInfo`).
///
/// # Panics
/// If `proto/` does not define it: names passed here are constants of Berth's code.
pub fn message(name: &str) -> MessageDescriptor {
    pool()
        .get_message_by_name(name)
        .unwrap_or_else(|| panic!("proto/ defines no message {name}"))
}

/// How a decoded message becomes the protobuf-JSON Mesos writes: field names as in the
/// definitions, 64-bit integers as numbers, enums by name, only the fields that are set.
fn json_options() -> SerializeOptions {
    SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(true)
}

/// A protobuf message in protobuf-JSON.
pub fn to_json(message: &DynamicMessage) -> Value {
    message
        .serialize_with_options(serde_json::value::Serializer, &json_options())
        .expect("a decoded message always has a JSON form")
}

/// Parses a binary protobuf `Call` into a [`Call`], with the same checks and messages as a
/// JSON one, and refuses field numbers Mesos does not define (which JSON would refuse by name).
///
/// ```
/// use berth::api::{proto, Call};
/// use prost::Message as _;
/// use prost_reflect::DynamicMessage;
///
/// // A client's GET_HEALTH: field 1 (type) = 1 (GET_HEALTH).
/// assert_eq!(proto::parse_call(&[0x08, 0x01]).unwrap(), Call::GetHealth);
/// assert!(proto::parse_call(b"\xff\xff").unwrap_err().message.contains("protobuf"));
/// ```
pub fn parse_call(body: &[u8]) -> Result<Call, ApiError> {
    let message = DynamicMessage::decode(message(CALL), body).map_err(|e| {
        ApiError::bad_request(format!("Failed to parse body into Call protobuf: {e}"))
    })?;
    let call = parse_call_value(&to_json(&message))?;
    if let Some(path) = first_unknown_field(&message, "") {
        return Err(ApiError::bad_request(format!(
            "field number {path} is not a field Mesos defines in this message"
        )));
    }
    Ok(call)
}

/// The path (`launch_container.container.17`) of the first field number a message and its
/// sub-messages carry that the definitions do not name.
fn first_unknown_field(message: &DynamicMessage, path: &str) -> Option<String> {
    let join = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(f) = message.unknown_fields().next() {
        return Some(join(&f.number().to_string()));
    }
    for (field, value) in message.fields() {
        let here = join(field.name());
        let found = match value {
            ProtoValue::Message(m) => first_unknown_field(m, &here),
            ProtoValue::List(items) => items.iter().enumerate().find_map(|(i, v)| match v {
                ProtoValue::Message(m) => first_unknown_field(m, &format!("{here}[{i}]")),
                _ => None,
            }),
            ProtoValue::Map(entries) => entries.iter().find_map(|(k, v)| match v {
                ProtoValue::Message(m) => first_unknown_field(m, &format!("{here}[{k:?}]")),
                _ => None,
            }),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Why a JSON answer has no protobuf form: it does not fit the `Response` definitions, which
/// is a bug of Berth's (the conformance tests send every call both ways to catch it).
#[derive(Debug, thiserror::Error)]
#[error("the answer does not fit Mesos's {message} message: {reason}")]
pub struct EncodeError {
    /// The message it was encoded as.
    pub message: &'static str,
    /// What did not fit.
    pub reason: String,
}

/// Encodes a protobuf-JSON `agent.Response` (as Berth's handlers build it) in binary
/// protobuf. Strict: a field the definitions do not name fails, so an addition slipped into a
/// Mesos message is an error, not silently dropped.
///
/// ```
/// use serde_json::json;
///
/// let bytes = berth::api::proto::encode_response(
///     &json!({"type": "GET_HEALTH", "get_health": {"healthy": true}}),
/// ).unwrap();
/// assert_eq!(bytes, [0x08, 0x01, 0x12, 0x02, 0x08, 0x01]);
/// ```
pub fn encode_response(answer: &Value) -> Result<Vec<u8>, EncodeError> {
    encode(RESPONSE, answer)
}

/// Encodes protobuf-JSON as the message called `name`, strictly (see [`encode_response`]).
pub fn encode(name: &'static str, json: &Value) -> Result<Vec<u8>, EncodeError> {
    let message = DynamicMessage::deserialize_with_options(
        message(name),
        json,
        &DeserializeOptions::new().deny_unknown_fields(true),
    )
    .map_err(|e| EncodeError {
        message: name,
        reason: e.to_string(),
    })?;
    Ok(message.encode_to_vec())
}

/// Decodes binary protobuf as the message called `name`, into protobuf-JSON (what a client
/// built from Mesos's definitions reads out of an answer).
pub fn decode(name: &str, bytes: &[u8]) -> Result<Value, prost::DecodeError> {
    Ok(to_json(&DynamicMessage::decode(message(name), bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_protobuf_call_is_parsed_like_its_json() {
        let json_call = json!({"type": "LAUNCH_CONTAINER", "launch_container": {
            "container_id": {"value": "pb-1"},
            "command": {"shell": false, "value": "/bin/sh", "arguments": ["sh", "-c", "exit 3"]},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 64.0}}],
            "limits": {"mem": {"value": "Infinity"}},
            "health_check": {"type": "HTTP", "http": {"port": 8080, "path": "/ok", "statuses": [200, 204]},
                             "interval_seconds": 2.5, "consecutive_failures": 4, "kill_on_unhealthy": false},
            "container": {"type": "DOCKER", "docker": {"image": "busybox", "network": "BRIDGE"},
                          "linux_info": {"bounding_capabilities": {"capabilities": ["NET_ADMIN"]}},
                          "rlimit_info": {"rlimits": [{"type": "RLMT_NOFILE", "soft": 10, "hard": 20}]}}}});
        let wire = encode(CALL, &json_call).unwrap();
        let from_protobuf = parse_call(&wire).unwrap();
        let from_json = super::super::parse_call(json_call.to_string().as_bytes()).unwrap();
        assert_eq!(from_protobuf, from_json);
    }

    #[test]
    fn protobuf_calls_get_the_json_calls_errors() {
        // Refused Mesos fields are named with the reason, whatever the medium.
        let refused = json!({"type": "LAUNCH_CONTAINER", "launch_container": {
            "container_id": {"value": "pb-2"},
            "container": {"type": "DOCKER", "docker": {"image": "busybox"},
                          "linux_info": {"seccomp": {}}}}});
        let e = parse_call(&encode(CALL, &refused).unwrap()).unwrap_err();
        let j = super::super::parse_call(refused.to_string().as_bytes()).unwrap_err();
        assert_eq!((e.status, &e.message), (j.status, &j.message));
        assert!(e.message.contains("seccomp"), "{}", e.message);
        // A call type Berth does not answer.
        let e = parse_call(&encode(CALL, &json!({"type": "GET_STATE"})).unwrap()).unwrap_err();
        assert!(
            e.message.contains("not supported by Berth"),
            "{}",
            e.message
        );
    }

    #[test]
    fn unknown_field_numbers_are_refused_with_their_path() {
        let mut wire = encode(
            CALL,
            &json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": "a"}}}),
        )
        .unwrap();
        // Field 501, varint 1, at the top level.
        wire.extend_from_slice(&[0xa8, 0x1f, 0x01]);
        let e = parse_call(&wire).unwrap_err();
        assert!(e.message.contains("field number 501"), "{}", e.message);
        // Inside wait_container.container_id: field 9 (varint) in the ContainerID.
        let id = DynamicMessage::decode(
            message("mesos.v1.ContainerID"),
            &[0x0a, 0x01, b'a', 0x48, 0x01][..],
        )
        .unwrap();
        let mut wait = DynamicMessage::new(message("mesos.v1.agent.Call.WaitContainer"));
        wait.set_field_by_name("container_id", ProtoValue::Message(id));
        let mut m =
            DynamicMessage::deserialize(message(CALL), &json!({"type": "WAIT_CONTAINER"})).unwrap();
        m.set_field_by_name("wait_container", ProtoValue::Message(wait));
        let e = parse_call(&m.encode_to_vec()).unwrap_err();
        assert!(
            e.message.contains("wait_container.container_id.9"),
            "{}",
            e.message
        );
    }

    #[test]
    fn answers_encode_strictly() {
        let ok = json!({"type": "GET_CONTAINERS", "get_containers": {"containers": [
            {"container_id": {"value": "a"}, "berth": {"state": "RUNNING", "n": 42},
             "resource_statistics": {"timestamp": 1.5, "mem_rss_bytes": 18446744073709551615u64}}]},
            "berth": {"note": "x"}});
        let wire = encode_response(&ok).unwrap();
        let back = decode(RESPONSE, &wire).unwrap();
        assert_eq!(
            back["get_containers"]["containers"][0]["resource_statistics"]["mem_rss_bytes"],
            json!(18446744073709551615u64)
        );
        assert_eq!(
            back["get_containers"]["containers"][0]["berth"]["state"],
            "RUNNING"
        );
        // An addition inside a Mesos message has no protobuf form.
        let bad = json!({"type": "GET_VERSION", "get_version": {"version_info": {"version": "1", "docker_version": "20"}}});
        let e = encode_response(&bad).unwrap_err();
        assert!(e.to_string().contains("docker_version"), "{e}");
        // bytes are base64 in JSON, raw on the wire.
        let wire = encode_response(
            &json!({"type": "READ_FILE", "read_file": {"size": 3, "data": "YWJj"}}),
        )
        .unwrap();
        assert!(wire.windows(3).any(|w| w == b"abc"));
    }

    /// The response field tables ([`crate::mesos_schema`], which the e2e tests check answers
    /// with) and the definitions name the same fields with the same kinds: one schema.
    #[test]
    fn the_response_tables_agree_with_the_definitions() {
        use crate::mesos_schema::{Kind, MESSAGES};
        use prost_reflect::Kind as P;
        for (name, fields) in MESSAGES {
            if name.starts_with("endpoint.") {
                continue; // plain endpoints: no message
            }
            let desc = message(&format!("mesos.v1.{name}"));
            let mut defined: Vec<String> = desc.fields().map(|f| f.name().to_owned()).collect();
            let mut tabled: Vec<String> = fields.iter().map(|(f, _)| (*f).to_owned()).collect();
            defined.sort_unstable();
            tabled.sort_unstable();
            assert_eq!(tabled, defined, "{name}: table vs definition");
            for (field, kind) in *fields {
                let kind_in_proto = desc.get_field_by_name(field).unwrap().kind();
                let ok = match (kind, &kind_in_proto) {
                    (Kind::Msg(inner), P::Message(m)) => {
                        m.full_name() == format!("mesos.v1.{inner}")
                    }
                    (Kind::Undescribed, P::Message(_)) => true,
                    (Kind::Berth, P::Message(m)) => m.full_name() == "google.protobuf.Struct",
                    (Kind::Scalar, P::Message(_)) => false,
                    (Kind::Scalar, _) => true,
                    _ => false,
                };
                assert!(
                    ok,
                    "{name}.{field}: table says {kind:?}, definition {kind_in_proto:?}"
                );
            }
        }
    }
}
