//! `berth ps | wait | kill | rm | stats | version`.

use std::time::Duration;

use serde_json::Value;

use super::AgentArgs;
use crate::client::AgentClient;
use crate::error::Error;

/// The exit code a shell would report for a `WAIT_CONTAINER` answer: the exit code, 128 + the
/// signal, or 125 when the container never ran (as `docker run` does for daemon-side failures).
pub fn exit_code(wait: &Value) -> i32 {
    match wait["exit_status"].as_i64() {
        Some(s) if s & 0x7f == 0 => ((s >> 8) & 0xff) as i32,
        Some(s) => 128 + (s & 0x7f) as i32,
        None => 125,
    }
}

/// One line describing how a container ended.
pub fn describe(wait: &Value) -> String {
    let state = wait["state"].as_str().unwrap_or("?");
    let mut out = state.to_owned();
    if let Some(s) = wait["exit_status"].as_i64() {
        if s & 0x7f == 0 {
            out.push_str(&format!(", exit code {}", (s >> 8) & 0xff));
        } else {
            out.push_str(&format!(", signal {}", s & 0x7f));
        }
    }
    if let Some(r) = wait["reason"].as_str() {
        out.push_str(&format!(", {r}"));
    }
    if let Some(m) = wait["message"].as_str() {
        out.push_str(&format!(": {m}"));
    }
    out
}

fn short(docker_id: &str) -> &str {
    &docker_id[..docker_id.len().min(12)]
}

pub(super) async fn ps(client: &AgentClient, json: bool) -> Result<i32, Error> {
    let containers = client.containers().await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&Value::Array(containers)).unwrap_or_default()
        );
        return Ok(0);
    }
    let rows: Vec<[String; 5]> = containers
        .iter()
        .map(|c| {
            let b = &c["berth"];
            let status = match b["termination"].as_object() {
                Some(_) => describe(&b["termination"]),
                None => match b["pull"].as_object() {
                    Some(p) => format!(
                        "pulling {}/{} bytes",
                        p.get("downloaded_bytes")
                            .and_then(Value::as_u64)
                            .unwrap_or(0),
                        p.get("download_total_bytes")
                            .and_then(Value::as_u64)
                            .unwrap_or(0)
                    ),
                    None => String::new(),
                },
            };
            [
                c["container_id"]["value"].as_str().unwrap_or("").to_owned(),
                b["state"].as_str().unwrap_or("").to_owned(),
                b["image"].as_str().unwrap_or("").to_owned(),
                short(b["docker_id"].as_str().unwrap_or("")).to_owned(),
                status,
            ]
        })
        .collect();
    let header = ["CONTAINER ID", "STATE", "IMAGE", "DOCKER ID", "STATUS"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    for r in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(0)
}

pub(super) async fn wait(client: &AgentClient, id: &str) -> Result<i32, Error> {
    let w = client.wait(id).await?;
    println!("{}", describe(&w));
    Ok(exit_code(&w))
}

pub(super) async fn kill(
    client: &AgentClient,
    id: &str,
    signal: Option<i32>,
    grace: Option<Duration>,
) -> Result<i32, Error> {
    client.kill(id, signal, grace).await?;
    Ok(0)
}

pub(super) async fn rm(client: &AgentClient, id: &str, force: bool) -> Result<i32, Error> {
    if force {
        match client.kill(id, Some(9), None).await {
            Ok(()) => {}
            // Already ended (or never known: the remove below says which).
            Err(Error::Api(e)) if e.status == 404 => {}
            Err(e) => return Err(e),
        }
        client.wait(id).await?;
    }
    client.remove(id).await?;
    Ok(0)
}

pub(super) async fn stats(client: &AgentClient, id: &str, json: bool) -> Result<i32, Error> {
    let c = client.container_with_usage(id).await?;
    let Some(stats) = c.get("resource_statistics").and_then(Value::as_object) else {
        let state = c["berth"]["state"].as_str().unwrap_or("unknown");
        return Err(Error::Api(crate::ApiError::conflict(format!(
            "container {id} has no resource statistics: it is {state}, not running"
        ))));
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(stats).unwrap_or_default()
        );
        return Ok(0);
    }
    for (k, v) in stats {
        println!("{k:<28} {v}");
    }
    Ok(0)
}

pub(super) async fn version(agent: &AgentArgs) -> Result<i32, Error> {
    println!("berth {}", env!("CARGO_PKG_VERSION"));
    let client = agent.client()?;
    match client.get_json("/version").await {
        Ok(v) => println!(
            "agent at {}: berth {}, Docker {} (API {})",
            client.base(),
            v["version"].as_str().unwrap_or("?"),
            v["docker_version"].as_str().unwrap_or("?"),
            v["docker_api_version"].as_str().unwrap_or("?")
        ),
        Err(e) => println!("agent at {}: not reachable ({e})", client.base()),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(&json!({"exit_status": 0})), 0);
        assert_eq!(exit_code(&json!({"exit_status": 3 << 8})), 3);
        assert_eq!(exit_code(&json!({"exit_status": 9})), 137);
        assert_eq!(exit_code(&json!({"state": "TASK_FAILED"})), 125);
        assert_eq!(
            describe(
                &json!({"exit_status": 256, "state": "TASK_FAILED", "message": "Container terminated"})
            ),
            "TASK_FAILED, exit code 1: Container terminated"
        );
    }
}
