//! Mesos's field names, per message, for every JSON answer Berth gives in a Mesos shape, and a
//! strict recursive check of an answer against them.
//!
//! The tables are facts taken from Mesos's definitions (`include/mesos/v1/mesos.proto`,
//! `include/mesos/v1/agent/agent.proto`) and, for the plain agent endpoints that have no
//! message (`/state`, `/flags`, `/containers`, `/monitor/statistics`), from the keys Mesos's
//! agent writes (`src/slave/http.cpp`). Berth's own additions may appear only as a `berth`
//! object, and only where a table allows it ([`Kind::Berth`]); anything else a table does not
//! name fails the check, so an addition slipped into a Mesos message is caught.

use serde_json::Value;

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A scalar (string, number, bool, enum name), or an array of them for a repeated field.
    Scalar,
    /// A message described by the named table (or an array of them).
    Msg(&'static str),
    /// A JSON object with free keys and scalar values (Mesos's flag and resource maps).
    Map,
    /// A Mesos message whose table is not written here because Berth never fills it: an
    /// empty array passes, anything else fails (write the table before sending it).
    Undescribed,
    /// Berth's documented extension object; its contents are Berth's own.
    Berth,
}

type Table = &'static [(&'static str, Kind)];

use Kind::{Berth, Map, Msg, Scalar, Undescribed};

/// Every table: `(message, [(field, kind)])`.
pub const MESSAGES: &[(&str, Table)] = &[
    // agent.proto: Response (the calls Berth answers) and its payloads.
    (
        "agent.Response",
        &[
            ("type", Scalar),
            ("get_health", Msg("agent.Response.GetHealth")),
            ("get_flags", Msg("agent.Response.GetFlags")),
            ("get_version", Msg("agent.Response.GetVersion")),
            ("get_metrics", Msg("agent.Response.GetMetrics")),
            ("get_containers", Msg("agent.Response.GetContainers")),
            ("wait_container", Msg("agent.Response.WaitContainer")),
            (
                "wait_nested_container",
                Msg("agent.Response.WaitNestedContainer"),
            ),
            ("list_files", Msg("agent.Response.ListFiles")),
            ("read_file", Msg("agent.Response.ReadFile")),
            ("berth", Berth),
        ],
    ),
    ("agent.Response.GetHealth", &[("healthy", Scalar)]),
    ("agent.Response.GetFlags", &[("flags", Msg("Flag"))]),
    (
        "agent.Response.GetVersion",
        &[("version_info", Msg("VersionInfo"))],
    ),
    ("agent.Response.GetMetrics", &[("metrics", Msg("Metric"))]),
    (
        "agent.Response.GetContainers",
        &[("containers", Msg("agent.Response.GetContainers.Container"))],
    ),
    (
        "agent.Response.GetContainers.Container",
        &[
            ("framework_id", Msg("FrameworkID")),
            ("executor_id", Msg("ExecutorID")),
            ("executor_name", Scalar),
            ("container_id", Msg("ContainerID")),
            ("container_status", Msg("ContainerStatus")),
            ("resource_statistics", Msg("ResourceStatistics")),
            // Documented in docs/api.md (GET_CONTAINERS): the container's Berth state.
            ("berth", Berth),
        ],
    ),
    (
        "agent.Response.WaitNestedContainer",
        &[
            ("exit_status", Scalar),
            ("state", Scalar),
            ("reason", Scalar),
            ("limitation", Msg("TaskResourceLimitation")),
            ("message", Scalar),
        ],
    ),
    (
        "agent.Response.WaitContainer",
        &[
            ("exit_status", Scalar),
            ("state", Scalar),
            ("reason", Scalar),
            ("limitation", Msg("TaskResourceLimitation")),
            ("message", Scalar),
        ],
    ),
    (
        "agent.Response.ListFiles",
        &[("file_infos", Msg("FileInfo"))],
    ),
    (
        "agent.Response.ReadFile",
        &[("size", Scalar), ("data", Scalar)],
    ),
    // mesos.proto.
    (
        "VersionInfo",
        &[
            ("version", Scalar),
            ("build_date", Scalar),
            ("build_time", Scalar),
            ("build_user", Scalar),
            ("git_sha", Scalar),
            ("git_branch", Scalar),
            ("git_tag", Scalar),
        ],
    ),
    ("Flag", &[("name", Scalar), ("value", Scalar)]),
    ("Metric", &[("name", Scalar), ("value", Scalar)]),
    ("FrameworkID", &[("value", Scalar)]),
    ("ExecutorID", &[("value", Scalar)]),
    (
        "ContainerID",
        &[("value", Scalar), ("parent", Msg("ContainerID"))],
    ),
    (
        "ContainerStatus",
        &[
            ("container_id", Msg("ContainerID")),
            ("network_infos", Msg("NetworkInfo")),
            ("cgroup_info", Msg("CgroupInfo")),
            ("executor_pid", Scalar),
        ],
    ),
    (
        "NetworkInfo",
        &[
            ("ip_addresses", Msg("NetworkInfo.IPAddress")),
            ("name", Scalar),
            ("groups", Scalar),
            ("labels", Msg("Labels")),
            ("port_mappings", Msg("NetworkInfo.PortMapping")),
        ],
    ),
    (
        "NetworkInfo.IPAddress",
        &[("protocol", Scalar), ("ip_address", Scalar)],
    ),
    (
        "NetworkInfo.PortMapping",
        &[
            ("host_port", Scalar),
            ("container_port", Scalar),
            ("protocol", Scalar),
        ],
    ),
    ("Labels", &[("labels", Msg("Label"))]),
    ("Label", &[("key", Scalar), ("value", Scalar)]),
    ("CgroupInfo", &[("net_cls", Msg("CgroupInfo.NetCls"))]),
    ("CgroupInfo.NetCls", &[("classid", Scalar)]),
    (
        "ResourceStatistics",
        &[
            ("timestamp", Scalar),
            ("processes", Scalar),
            ("threads", Scalar),
            ("cpus_user_time_secs", Scalar),
            ("cpus_system_time_secs", Scalar),
            ("cpus_limit", Scalar),
            ("cpus_soft_limit", Scalar),
            ("cpus_nr_periods", Scalar),
            ("cpus_nr_throttled", Scalar),
            ("cpus_throttled_time_secs", Scalar),
            ("mem_total_bytes", Scalar),
            ("mem_total_memsw_bytes", Scalar),
            ("mem_kmem_usage_bytes", Scalar),
            ("mem_kmem_tcp_usage_bytes", Scalar),
            ("mem_limit_bytes", Scalar),
            ("mem_soft_limit_bytes", Scalar),
            ("mem_file_bytes", Scalar),
            ("mem_anon_bytes", Scalar),
            ("mem_cache_bytes", Scalar),
            ("mem_rss_bytes", Scalar),
            ("mem_mapped_file_bytes", Scalar),
            ("mem_swap_bytes", Scalar),
            ("mem_unevictable_bytes", Scalar),
            ("mem_low_pressure_counter", Scalar),
            ("mem_medium_pressure_counter", Scalar),
            ("mem_critical_pressure_counter", Scalar),
            ("disk_limit_bytes", Scalar),
            ("disk_used_bytes", Scalar),
            ("disk_statistics", Undescribed),
            ("blkio_statistics", Undescribed),
            ("perf", Undescribed),
            ("net_rx_packets", Scalar),
            ("net_rx_bytes", Scalar),
            ("net_rx_errors", Scalar),
            ("net_rx_dropped", Scalar),
            ("net_tx_packets", Scalar),
            ("net_tx_bytes", Scalar),
            ("net_tx_errors", Scalar),
            ("net_tx_dropped", Scalar),
            ("net_tx_rate_limit", Scalar),
            ("net_tx_burst_rate_limit", Scalar),
            ("net_tx_burst_size", Scalar),
            ("net_rx_rate_limit", Scalar),
            ("net_rx_burst_rate_limit", Scalar),
            ("net_rx_burst_size", Scalar),
            ("net_rate_statistics", Undescribed),
            ("net_ephemeral_ports", Undescribed),
            ("net_tcp_rtt_microsecs_p50", Scalar),
            ("net_tcp_rtt_microsecs_p90", Scalar),
            ("net_tcp_rtt_microsecs_p95", Scalar),
            ("net_tcp_rtt_microsecs_p99", Scalar),
            ("net_tcp_active_connections", Scalar),
            ("net_tcp_time_wait_connections", Scalar),
            ("net_traffic_control_statistics", Undescribed),
            ("net_snmp_statistics", Undescribed),
        ],
    ),
    ("TaskResourceLimitation", &[("resources", Msg("Resource"))]),
    (
        "Resource",
        &[
            ("provider_id", Undescribed),
            ("name", Scalar),
            ("type", Scalar),
            ("scalar", Msg("Value.Scalar")),
            ("ranges", Msg("Value.Ranges")),
            ("set", Msg("Value.Set")),
            ("role", Scalar),
            ("allocation_info", Undescribed),
            ("reservation", Undescribed),
            ("reservations", Undescribed),
            ("disk", Undescribed),
            ("revocable", Undescribed),
            ("shared", Undescribed),
        ],
    ),
    ("Value.Scalar", &[("value", Scalar)]),
    ("Value.Ranges", &[("range", Msg("Value.Range"))]),
    ("Value.Range", &[("begin", Scalar), ("end", Scalar)]),
    ("Value.Set", &[("item", Scalar)]),
    (
        "FileInfo",
        &[
            ("path", Scalar),
            ("nlink", Scalar),
            ("size", Scalar),
            ("mtime", Msg("TimeInfo")),
            ("mode", Scalar),
            ("uid", Scalar),
            ("gid", Scalar),
        ],
    ),
    ("TimeInfo", &[("nanoseconds", Scalar)]),
    // The agent's plain endpoints (keys its HTTP handlers write; no proto message).
    (
        "endpoint./state",
        &[
            ("version", Scalar),
            ("git_sha", Scalar),
            ("git_branch", Scalar),
            ("git_tag", Scalar),
            ("build_date", Scalar),
            ("build_time", Scalar),
            ("build_user", Scalar),
            ("start_time", Scalar),
            ("id", Scalar),
            ("pid", Scalar),
            ("hostname", Scalar),
            ("capabilities", Scalar),
            ("domain", Undescribed),
            ("drain_config", Undescribed),
            ("estimated_drain_start_time_seconds", Scalar),
            ("resources", Map),
            ("reserved_resources", Map),
            ("unreserved_resources", Map),
            ("reserved_resources_full", Map),
            ("unreserved_resources_full", Msg("Resource")),
            ("reserved_resources_allocated", Map),
            ("unreserved_resources_allocated", Map),
            ("resource_providers", Undescribed),
            ("attributes", Map),
            ("master_hostname", Scalar),
            ("log_dir", Scalar),
            ("external_log_file", Scalar),
            ("flags", Map),
            ("frameworks", Undescribed),
            ("completed_frameworks", Undescribed),
            // Documented in docs/api.md (`/state`): Berth's containers and Docker.
            ("berth", Berth),
        ],
    ),
    ("endpoint./flags", &[("flags", Map)]),
    (
        "endpoint./containers",
        &[
            ("framework_id", Scalar),
            ("executor_id", Scalar),
            ("executor_name", Scalar),
            ("source", Scalar),
            ("container_id", Scalar),
            ("status", Msg("ContainerStatus")),
            ("statistics", Msg("ResourceStatistics")),
        ],
    ),
    (
        "endpoint./monitor/statistics",
        &[
            ("framework_id", Scalar),
            ("executor_id", Scalar),
            ("executor_name", Scalar),
            ("source", Scalar),
            ("statistics", Msg("ResourceStatistics")),
        ],
    ),
    (
        "endpoint./files/read",
        &[("data", Scalar), ("offset", Scalar)],
    ),
    (
        "endpoint./version",
        &[
            ("version", Scalar),
            ("build_date", Scalar),
            ("build_time", Scalar),
            ("build_user", Scalar),
            ("git_sha", Scalar),
            ("git_branch", Scalar),
            ("git_tag", Scalar),
            // Documented in docs/api.md (`/version`): the Docker daemon's versions.
            ("berth", Berth),
        ],
    ),
    (
        "endpoint./files/browse",
        &[
            ("path", Scalar),
            ("nlink", Scalar),
            ("size", Scalar),
            ("mtime", Scalar),
            ("mode", Scalar),
            ("uid", Scalar),
            ("gid", Scalar),
        ],
    ),
];

fn table(message: &str) -> Option<Table> {
    MESSAGES
        .iter()
        .find(|(m, _)| *m == message)
        .map(|(_, t)| *t)
}

/// Checks `value` (an object, or an array of them) against `message`'s table and every
/// table below it. The error names the JSON path and what is wrong.
pub fn check(message: &str, value: &Value) -> Result<(), String> {
    let mut path = String::new();
    check_at(message, value, &mut path)
}

fn check_at(message: &str, value: &Value, path: &mut String) -> Result<(), String> {
    let Some(fields) = table(message) else {
        return Err(format!("{path}: no table for message {message}"));
    };
    let items: Vec<&Value> = match value {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    for (i, item) in items.into_iter().enumerate() {
        let here = path.len();
        if value.is_array() {
            path.push_str(&format!("[{i}]"));
        }
        let Value::Object(obj) = item else {
            return Err(format!("{path}: {message} must be an object, got {item}"));
        };
        for (key, v) in obj {
            let at = path.len();
            path.push('.');
            path.push_str(key);
            let Some((_, kind)) = fields.iter().find(|(f, _)| f == key) else {
                return Err(format!("{path}: {message} has no field '{key}'"));
            };
            check_field(*kind, v, path)?;
            path.truncate(at);
        }
        path.truncate(here);
    }
    Ok(())
}

fn check_field(kind: Kind, v: &Value, path: &mut String) -> Result<(), String> {
    let scalar = |v: &Value| !v.is_object() && !v.is_array();
    match kind {
        Kind::Scalar => {
            let ok = match v {
                Value::Array(a) => a.iter().all(scalar),
                v => scalar(v),
            };
            if !ok {
                return Err(format!("{path}: expected a scalar, got {v}"));
            }
        }
        Kind::Msg(m) => check_at(m, v, path)?,
        Kind::Map => match v {
            Value::Object(o) => {
                if let Some((k, _)) = o.iter().find(|(_, x)| !scalar(x)) {
                    return Err(format!("{path}.{k}: expected a scalar map value"));
                }
            }
            _ => return Err(format!("{path}: expected an object, got {v}")),
        },
        Kind::Undescribed => {
            if !v.as_array().is_some_and(|a| a.is_empty()) {
                return Err(format!(
                    "{path}: Berth does not fill this Mesos field; its table is not written"
                ));
            }
        }
        Kind::Berth => {
            if !v.is_object() {
                return Err(format!("{path}: the berth extension must be an object"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_referenced_message_has_a_table() {
        for (m, fields) in MESSAGES {
            for (f, kind) in *fields {
                if let Kind::Msg(inner) = kind {
                    assert!(table(inner).is_some(), "{m}.{f} refers to {inner}");
                }
            }
        }
    }

    #[test]
    fn the_check_refuses_unknown_fields_at_any_depth() {
        let ok = json!({"type": "GET_VERSION", "get_version": {"version_info": {"version": "1"}},
                        "berth": {"docker_version": "20.10"}});
        check("agent.Response", &ok).unwrap();
        let bad = json!({"type": "GET_VERSION", "get_version": {"version_info": {"version": "1", "docker_version": "20.10"}}});
        let e = check("agent.Response", &bad).unwrap_err();
        assert!(
            e.contains(".get_version.version_info.docker_version"),
            "{e}"
        );
        let bad = json!({"get_containers": {"containers": [{"container_id": {"value": "a"}},
                         {"container_id": {"value": "b", "extra": 1}}]}});
        let e = check("agent.Response", &bad).unwrap_err();
        assert!(e.contains("containers[1].container_id.extra"), "{e}");
        // `berth` only where a table allows it.
        let bad = json!({"get_health": {"healthy": true, "berth": {}}});
        assert!(check("agent.Response", &bad).is_err());
        // Kinds: an object where a scalar belongs, a filled undescribed field.
        assert!(check("Flag", &json!({"name": {"x": 1}})).is_err());
        assert!(check("endpoint./state", &json!({"frameworks": []})).is_ok());
        assert!(check("endpoint./state", &json!({"frameworks": [{"id": "f"}]})).is_err());
        assert!(check("endpoint./flags", &json!({"flags": {"a": {"b": 1}}})).is_err());
    }
}
