//! A private `redis-server` for one test: on a free loopback port, keeping nothing on disk
//! (`--save "" --appendonly no`, like the CI's shared one), so [`RedisServer::restart`] is a
//! Redis restart that loses every key and stream — the worst case the services must survive.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a starting server may take to answer `PING`.
const START_PATIENCE: Duration = Duration::from_secs(20);

/// A running `redis-server`; dropping it kills it.
pub struct RedisServer {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` (from `PATH`) on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = tempfile::tempdir()?;
        let child = spawn(port, dir.path().to_path_buf())?;
        let server = Self { port, child, dir };
        server.wait_ready().await?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: nothing flushed, nothing kept) and starts an empty one on the
    /// same port after `down`.
    pub async fn restart(&mut self, down: Duration) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        tokio::time::sleep(down).await;
        self.child = spawn(self.port, self.dir.path().to_path_buf())?;
        self.wait_ready().await
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if ping(self.port).await {
                return Ok(());
            }
            if started.elapsed() > START_PATIENCE {
                bail!(
                    "redis-server on port {} did not answer PING within {START_PATIENCE:?}",
                    self.port
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn spawn(port: u16, dir: PathBuf) -> anyhow::Result<Child> {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting redis-server (is it installed?)")
}

async fn ping(port: u16) -> bool {
    let Ok(mut socket) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if socket.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), socket.read_exact(&mut answer)).await,
        Ok(Ok(_))
    ) && &answer == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
