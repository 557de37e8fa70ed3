//! The JSON shapes of the answers (Mesos v1 `agent::Response` in protobuf-JSON form, plus the
//! `berth` extension object), built from plain data so they can be tested without an agent.

use serde_json::{json, Map, Value};

use crate::files::FileInfo;

/// Wraps a payload as `{"type": T, "<t>": payload}`.
pub fn typed(call_type: &str, payload: Value) -> Value {
    json!({ "type": call_type, call_type.to_ascii_lowercase(): payload })
}

/// `GET_HEALTH`.
pub fn health(healthy: bool) -> Value {
    typed("GET_HEALTH", json!({ "healthy": healthy }))
}

/// `GET_VERSION`: Mesos's `VersionInfo` with only its own fields (`version`), and Berth's
/// additions (the Docker versions) in the `berth` object beside the payload.
pub fn version(version: &str, berth: Value) -> Value {
    let mut v = typed(
        "GET_VERSION",
        json!({ "version_info": { "version": version } }),
    );
    v["berth"] = berth;
    v
}

/// `GET_FLAGS`: `[{name, value}]`.
pub fn flags(flags: &[(&str, String)]) -> Value {
    let list: Vec<Value> = flags
        .iter()
        .map(|(n, v)| json!({ "name": n, "value": v }))
        .collect();
    typed("GET_FLAGS", json!({ "flags": list }))
}

/// `GET_METRICS`: `[{name, value}]`.
pub fn metrics(metrics: &[(String, f64)]) -> Value {
    let list: Vec<Value> = metrics
        .iter()
        .map(|(n, v)| json!({ "name": n, "value": v }))
        .collect();
    typed("GET_METRICS", json!({ "metrics": list }))
}

/// A Mesos `ContainerID`.
pub fn container_id(id: &str) -> Value {
    json!({ "value": id })
}

/// A termination, as `WAIT_CONTAINER`'s payload: protobuf-JSON leaves unset fields out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TerminationView {
    /// wait(2) status.
    pub exit_status: Option<i32>,
    /// `TASK_*`.
    pub state: String,
    /// `REASON_*`.
    pub reason: Option<String>,
    /// The limited resource's name (`mem`), when a limit ended it.
    pub limitation: Option<String>,
    /// Text.
    pub message: String,
}

impl TerminationView {
    /// The JSON object.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(s) = self.exit_status {
            m.insert("exit_status".into(), json!(s));
        }
        m.insert("state".into(), json!(self.state));
        if let Some(r) = &self.reason {
            m.insert("reason".into(), json!(r));
        }
        if let Some(l) = &self.limitation {
            m.insert(
                "limitation".into(),
                json!({ "resources": [{ "name": l, "type": "SCALAR" }] }),
            );
        }
        if !self.message.is_empty() {
            m.insert("message".into(), json!(self.message));
        }
        Value::Object(m)
    }
}

/// `WAIT_CONTAINER`.
pub fn wait(t: &TerminationView) -> Value {
    typed("WAIT_CONTAINER", t.to_json())
}

/// A v1 `FileInfo`.
pub fn file_info_v1(f: &FileInfo) -> Value {
    json!({
        "path": f.path,
        "nlink": f.nlink,
        "size": f.size,
        "mtime": { "nanoseconds": f.mtime_nanos as i64 },
        "mode": f.mode,
        "uid": f.uid,
        "gid": f.gid,
    })
}

/// A `/files/browse` entry (Mesos's plain endpoint: mode as `ls -l` text, mtime in seconds).
pub fn file_info_browse(f: &FileInfo) -> Value {
    json!({
        "path": f.path,
        "nlink": f.nlink,
        "size": f.size,
        "mtime": (f.mtime_nanos / 1_000_000_000) as i64,
        "mode": f.mode_string(),
        "uid": f.uid,
        "gid": f.gid,
    })
}

/// `LIST_FILES`.
pub fn list_files(entries: &[FileInfo]) -> Value {
    typed(
        "LIST_FILES",
        json!({ "file_infos": entries.iter().map(file_info_v1).collect::<Vec<_>>() }),
    )
}

/// `READ_FILE`: the file's size and the bytes, base64 (protobuf-JSON `bytes`).
pub fn read_file(size: u64, data: &[u8]) -> Value {
    use base64::Engine as _;
    typed(
        "READ_FILE",
        json!({ "size": size, "data": base64::engine::general_purpose::STANDARD.encode(data) }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_field_is_the_lowercased_type() {
        assert_eq!(
            health(true),
            json!({"type": "GET_HEALTH", "get_health": {"healthy": true}})
        );
        assert_eq!(
            flags(&[("listen", "127.0.0.1:5051".into())]),
            json!({"type": "GET_FLAGS", "get_flags": {"flags": [{"name": "listen", "value": "127.0.0.1:5051"}]}})
        );
    }

    /// Every answer built here, checked strictly against Mesos's field tables.
    #[test]
    fn answers_are_valid_mesos_responses() {
        use crate::mesos_schema::check;
        let v = version(
            "0.1.0",
            json!({"docker_version": "20.10.24", "docker_api_version": "1.41"}),
        );
        check("agent.Response", &v).unwrap();
        assert_eq!(
            v["get_version"]["version_info"],
            json!({"version": "0.1.0"})
        );
        assert_eq!(v["berth"]["docker_version"], "20.10.24");
        // The shape before the fix fails the check.
        let old = json!({"type": "GET_VERSION", "get_version": {"version_info":
            {"version": "0.1.0", "docker_version": "20.10.24"}}});
        assert!(check("agent.Response", &old).is_err());
        for v in [
            health(true),
            flags(&[("listen", "127.0.0.1:5051".into())]),
            metrics(&[("agent/uptime_secs".into(), 1.0)]),
            wait(&TerminationView {
                exit_status: Some(9),
                state: "TASK_FAILED".into(),
                reason: Some("REASON_CONTAINER_LIMITATION_MEMORY".into()),
                limitation: Some("mem".into()),
                message: "Memory limit exceeded".into(),
            }),
            read_file(5, b"hi"),
            list_files(&[FileInfo {
                path: "/containers/c/stdout".into(),
                nlink: 1,
                size: 2,
                mtime_nanos: 1,
                mode: 0o100644,
                uid: "root".into(),
                gid: "root".into(),
            }]),
        ] {
            check("agent.Response", &v).unwrap_or_else(|e| panic!("{v}: {e}"));
        }
    }

    #[test]
    fn wait_leaves_unset_fields_out() {
        let t = TerminationView {
            exit_status: Some(256),
            state: "TASK_FAILED".into(),
            ..Default::default()
        };
        assert_eq!(
            wait(&t),
            json!({"type": "WAIT_CONTAINER", "wait_container": {"exit_status": 256, "state": "TASK_FAILED"}})
        );
        let t = TerminationView {
            exit_status: Some(9),
            state: "TASK_FAILED".into(),
            reason: Some("REASON_CONTAINER_LIMITATION_MEMORY".into()),
            limitation: Some("mem".into()),
            message: "Memory limit exceeded".into(),
        };
        let v = t.to_json();
        assert_eq!(v["limitation"]["resources"][0]["name"], "mem");
        assert_eq!(v["message"], "Memory limit exceeded");
    }

    #[test]
    fn read_file_is_base64() {
        assert_eq!(
            read_file(5, b"hi"),
            json!({"type": "READ_FILE", "read_file": {"size": 5, "data": "aGk="}})
        );
    }
}
