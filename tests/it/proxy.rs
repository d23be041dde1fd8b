//! A TCP proxy between the processes under test and the broker, that the
//! test controls: it can cut every connection through it and refuse new
//! ones for a while, so "the broker is unreachable" can be staged without
//! touching the broker itself (which other tests share).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A loopback proxy to one upstream address.
pub struct Proxy {
    addr: SocketAddr,
    refusing: Arc<AtomicBool>,
    /// Bumped to cut the connections opened before it.
    generation: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl Proxy {
    /// Listens on an ephemeral loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let refusing = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let accepted = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            upstream,
            Arc::clone(&refusing),
            generation.clone(),
            Arc::clone(&accepted),
            stop.clone(),
        ));
        Ok(Proxy {
            addr,
            refusing,
            generation,
            accepted,
            stop,
        })
    }

    /// The proxy's own address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The AMQP URL that goes through the proxy (guest/guest, vhost /).
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// Drops every connection open through the proxy, at once.
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// While `true`, new connections are accepted and closed at once, as a
    /// broker that is down would (but without giving the port away).
    pub fn refuse(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Connections forwarded so far (refused ones not counted).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    refusing: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    loop {
        let (client, _) = tokio::select! {
            _ = stop.cancelled() => return,
            next = listener.accept() => match next {
                Ok(pair) => pair,
                Err(_) => continue,
            },
        };
        if refusing.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        accepted.fetch_add(1, Ordering::SeqCst);
        let mut cuts = generation.subscribe();
        cuts.mark_unchanged();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            forward(client, server, &mut cuts).await;
        });
    }
}

/// Copies both ways until either side closes or the proxy cuts; dropping
/// the sockets then resets both ends.
async fn forward(mut client: TcpStream, mut server: TcpStream, cuts: &mut watch::Receiver<u64>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => {}
        _ = cuts.changed() => {}
    }
}
