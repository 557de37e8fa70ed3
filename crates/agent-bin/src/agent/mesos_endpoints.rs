//! The Mesos agent's plain JSON endpoints that monitoring scrapes: `/state`, `/flags`,
//! `/containers` and `/monitor/statistics`, in the shapes a Mesos agent writes them (the key
//! tables are in [`crate::mesos_schema`]). Berth's containers are standalone (no framework, no
//! executor); where Mesos keys an entry by executor, a Berth container stands for its own
//! executor (`executor_id` is the container id, `framework_id` and `source` are empty).

use http::{Response, StatusCode};
use serde_json::{json, Map, Value};

use super::endpoints::VERSION;
use super::Agent;
use crate::http::body::{json as json_response, Body};

/// `/containers` entries from `GET_CONTAINERS` entries: containers not yet terminated (a Mesos
/// containerizer lists only live containers), optionally only `only`; each with its container
/// id as a string, its `status` and, when sampled, its `statistics`.
pub fn containers_json(entries: &[Value], only: Option<&str>) -> Value {
    let list = entries
        .iter()
        .filter(|e| e["berth"]["state"] != "TERMINATED")
        .filter(|e| only.is_none_or(|id| e["container_id"]["value"] == id))
        .map(|e| {
            let mut out = Map::new();
            out.insert("container_id".into(), e["container_id"]["value"].clone());
            if let Some(s) = e.get("container_status") {
                out.insert("status".into(), s.clone());
            }
            if let Some(s) = e.get("resource_statistics") {
                out.insert("statistics".into(), s.clone());
            }
            Value::Object(out)
        })
        .collect();
    Value::Array(list)
}

/// `/monitor/statistics` entries: one per container that has statistics (Mesos lists only
/// executors with statistics).
pub fn monitor_statistics_json(entries: &[Value]) -> Value {
    let list = entries
        .iter()
        .filter_map(|e| {
            let stats = e.get("resource_statistics")?;
            Some(json!({
                "framework_id": "",
                "executor_id": e["container_id"]["value"],
                "executor_name": e["berth"]["name"].as_str().unwrap_or(""),
                "source": "",
                "statistics": stats,
            }))
        })
        .collect();
    Value::Array(list)
}

/// The flags as Mesos's `/flags` and `/state` write them: name → value text.
pub fn flags_map(flags: &[(&str, String)]) -> Map<String, Value> {
    flags
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
        .collect()
}

/// The host's CPUs and memory (MB), as a Mesos resources map and as `Resource`s; Berth takes
/// no share for itself and has no disk or port resources to report.
fn host_resources() -> (Value, Value) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mem_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| (kib / 1024.0).floor());
    let map = json!({ "cpus": cpus, "mem": mem_mb });
    let full = json!([
        { "name": "cpus", "type": "SCALAR", "scalar": { "value": cpus } },
        { "name": "mem", "type": "SCALAR", "scalar": { "value": mem_mb } },
    ]);
    (map, full)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

impl Agent {
    /// `GET /flags`.
    pub(super) fn flags_endpoint(&self) -> Response<Body> {
        json_response(
            StatusCode::OK,
            &json!({ "flags": flags_map(&self.flags()) }),
        )
    }

    /// `GET /containers`.
    pub(super) async fn containers_endpoint(&self, only: Option<&str>) -> Response<Body> {
        let entries = self.container_entries(true).await;
        json_response(StatusCode::OK, &containers_json(&entries, only))
    }

    /// `GET /monitor/statistics`.
    pub(super) async fn monitor_statistics(&self) -> Response<Body> {
        let entries = self.container_entries(true).await;
        json_response(StatusCode::OK, &monitor_statistics_json(&entries))
    }

    /// `GET /state`: Mesos's agent state; Berth's containers and Docker under `berth`.
    pub(super) async fn state(&self) -> Response<Body> {
        let containers = self.container_entries(false).await;
        let start = self
            .started
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let (resources, resources_full) = host_resources();
        json_response(
            StatusCode::OK,
            &json!({
                "version": VERSION,
                "start_time": start,
                "id": self.agent_id.as_str(),
                // Mesos's is its libprocess address; Berth's HTTP address in the same form.
                "pid": format!("slave(1)@{}", self.bound),
                "hostname": hostname(),
                "capabilities": [],
                "resources": resources,
                "reserved_resources": {},
                "unreserved_resources": resources,
                "reserved_resources_full": {},
                "unreserved_resources_full": resources_full,
                "resource_providers": [],
                "attributes": {},
                "flags": flags_map(&self.flags()),
                "frameworks": [],
                "completed_frameworks": [],
                "berth": {
                    "uptime_secs": self.uptime().as_secs_f64(),
                    "docker": {
                        "endpoint": self.config.docker_socket,
                        "version": self.docker_version,
                        "api_version": self.docker_api_version,
                    },
                    "containers": containers,
                },
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos_schema::check;

    fn entries() -> Vec<Value> {
        vec![
            json!({"container_id": {"value": "a"},
                   "container_status": {"container_id": {"value": "a"}, "executor_pid": 7},
                   "resource_statistics": {"timestamp": 1.0, "processes": 1},
                   "berth": {"state": "RUNNING", "name": "mesos-a"}}),
            json!({"container_id": {"value": "b"},
                   "container_status": {"container_id": {"value": "b"}},
                   "berth": {"state": "PULLING", "name": "mesos-b"}}),
            json!({"container_id": {"value": "c"},
                   "container_status": {"container_id": {"value": "c"}},
                   "berth": {"state": "TERMINATED", "name": "mesos-c"}}),
        ]
    }

    #[test]
    fn containers_lists_live_containers_in_mesos_shape() {
        let v = containers_json(&entries(), None);
        check("endpoint./containers", &v).unwrap();
        let ids: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["container_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(v[0]["statistics"]["processes"], 1);
        assert_eq!(v[0]["status"]["executor_pid"], 7);
        assert!(v[1].get("statistics").is_none());
        assert_eq!(
            containers_json(&entries(), Some("b"))
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(containers_json(&entries(), Some("c")), json!([]));
    }

    #[test]
    fn monitor_statistics_has_one_entry_per_sampled_container() {
        let v = monitor_statistics_json(&entries());
        check("endpoint./monitor/statistics", &v).unwrap();
        assert_eq!(
            v,
            json!([{"framework_id": "", "executor_id": "a", "executor_name": "mesos-a",
                    "source": "", "statistics": {"timestamp": 1.0, "processes": 1}}])
        );
    }

    #[test]
    fn flags_and_resources_fit_the_state_table() {
        let (map, full) = host_resources();
        assert!(map["cpus"].as_f64().unwrap() >= 1.0 && map["mem"].as_f64().unwrap() > 0.0);
        let flags = flags_map(&[("listen", "127.0.0.1:5051".into())]);
        let state = json!({"resources": map, "unreserved_resources_full": full,
                           "flags": flags, "frameworks": [], "berth": {"containers": []}});
        check("endpoint./state", &state).unwrap();
        check("endpoint./flags", &json!({ "flags": flags })).unwrap();
    }
}
