//! Following a container's `stdout`/`stderr` in its sandbox through `READ_FILE`, across
//! rotations (`berth logs [-f]` and `berth run`).

use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::client::AgentClient;
use crate::error::Error;
use crate::files::MAX_READ;

/// How often a followed file is polled.
pub const POLL: Duration = Duration::from_millis(100);

/// A read position in one of a container's log files.
#[derive(Debug, Clone)]
pub struct Tail {
    path: String,
    offset: u64,
}

impl Tail {
    /// The start of container `id`'s `stream` (`stdout` or `stderr`).
    pub fn new(id: &str, stream: &str) -> Tail {
        Tail {
            path: format!("/containers/{id}/{stream}"),
            offset: 0,
        }
    }

    /// Copies what was appended since the last call to `out`; returns the bytes copied. A file
    /// that shrank was rotated: the rest of the rotated file (`<name>.1`) is copied first, then
    /// the new file from its start. A file that does not exist yet counts as empty.
    pub async fn poll(
        &mut self,
        client: &AgentClient,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<u64, Error> {
        let mut copied = 0;
        loop {
            let (size, data) = match client
                .read_file(&self.path, self.offset, Some(MAX_READ))
                .await
            {
                Ok(r) => r,
                Err(Error::Api(e)) if e.status == 404 => return Ok(copied),
                Err(e) => return Err(e),
            };
            if size < self.offset {
                let rotated = format!("{}.1", self.path);
                if let Ok((_, rest)) = client.read_file(&rotated, self.offset, None).await {
                    out.write_all(&rest)
                        .await
                        .map_err(|e| Error::io("write", "(stdout)", e))?;
                    copied += rest.len() as u64;
                }
                self.offset = 0;
                continue;
            }
            if !data.is_empty() {
                out.write_all(&data)
                    .await
                    .map_err(|e| Error::io("write", "(stdout)", e))?;
                out.flush()
                    .await
                    .map_err(|e| Error::io("write", "(stdout)", e))?;
            }
            self.offset += data.len() as u64;
            copied += data.len() as u64;
            if data.is_empty() || self.offset >= size {
                return Ok(copied);
            }
        }
    }
}

/// `berth logs`: prints the file, and with `follow` keeps printing until the container ends.
pub async fn print(
    client: &AgentClient,
    id: &str,
    stream: &str,
    follow: bool,
) -> Result<i32, Error> {
    client.container(id).await?;
    let mut tail = Tail::new(id, stream);
    let mut out = tokio::io::stdout();
    if !follow {
        tail.poll(client, &mut out).await?;
        return Ok(0);
    }
    let waiter = {
        let client = client.clone();
        let id = id.to_owned();
        tokio::spawn(async move { client.wait(&id).await })
    };
    tokio::pin!(waiter);
    loop {
        tail.poll(client, &mut out).await?;
        tokio::select! {
            ended = &mut waiter => {
                // The termination is reported only after the logs are on disk: one last read.
                tail.poll(client, &mut out).await?;
                ended.map_err(|e| Error::Containerizer(format!("wait task failed: {e}")))??;
                return Ok(0);
            }
            () = tokio::time::sleep(POLL) => {}
        }
    }
}
