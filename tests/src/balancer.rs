//! A round-robin TCP load balancer for the local cluster: each new connection goes to the next
//! backend; a backend that refuses the connection (killed) is skipped, so clients only notice a
//! dead gateway through the requests it was serving.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A listening balancer; dropping it stops accepting (open connections finish on their own).
pub struct Balancer {
    /// Where clients connect (a loopback port of its own).
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Balancer {
    /// Listens on a free loopback port in front of `backends`.
    pub async fn start(backends: Vec<SocketAddr>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let backends = Arc::new(backends);
        let next = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (backends, next) = (backends.clone(), next.clone());
                tokio::spawn(async move {
                    if let Some(backend) = connect_next(&backends, &next).await {
                        let (mut client, mut backend) = (client, backend);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
                    }
                });
            }
        });
        Ok(Self { addr, accept })
    }
}

/// The next backend in turn that accepts a connection.
async fn connect_next(backends: &[SocketAddr], next: &AtomicUsize) -> Option<TcpStream> {
    for _ in 0..backends.len() {
        let backend = backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()];
        if let Ok(stream) = TcpStream::connect(backend).await {
            let _ = stream.set_nodelay(true);
            return Some(stream);
        }
    }
    None
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
