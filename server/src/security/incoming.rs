//! Accepting connections: one task accepts TCP connections and runs each TLS
//! handshake in its own task under a timeout, so a slow or garbage client never
//! holds up others. Finished connections come out of a channel, for tonic (as a
//! stream of [`Conn`], which carries the peer's certificate identity) and for axum
//! (as an [`HttpListener`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::debug;

use super::tls::{TlsState, cert_identity};

/// Longest time a client gets to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most TLS handshakes in progress at once; further connections wait to be accepted.
const MAX_HANDSHAKES: usize = 256;
/// Accepted connections waiting for the server to take them.
const BACKLOG: usize = 64;

/// Which listener: the gRPC one (its TLS config may ask for client certificates) or
/// the HTTP one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Grpc,
    Http,
}

/// Facts about a connection's peer, in every request's extensions.
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// The TCP peer address.
    pub remote: Option<SocketAddr>,
    /// The identity of the client certificate verified in the handshake (mTLS).
    pub cert_identity: Option<String>,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An accepted connection, plaintext or TLS.
pub struct Conn {
    io: Io,
    peer: PeerInfo,
}

impl Conn {
    /// What is known about the peer.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Starts accepting on `listener`; TLS when `tls` is given. The task ends when the
/// receiver is dropped.
pub fn accept(
    listener: TcpListener,
    tls: Option<Arc<TlsState>>,
    surface: Surface,
) -> mpsc::Receiver<Conn> {
    let (tx, rx) = mpsc::channel(BACKLOG);
    tokio::spawn(accept_loop(listener, tls, surface, tx));
    rx
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<TlsState>>,
    surface: Surface,
    tx: mpsc::Sender<Conn>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            () = tx.closed() => return,
            permit = handshakes.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: back off briefly.
                debug!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let peer = PeerInfo {
            remote: Some(remote),
            cert_identity: None,
        };
        let Some(state) = &tls else {
            drop(permit);
            if tx
                .send(Conn {
                    io: Io::Plain(tcp),
                    peer,
                })
                .await
                .is_err()
            {
                return;
            }
            continue;
        };
        let configs = state.current();
        let config = match surface {
            Surface::Grpc => configs.grpc,
            Surface::Http => configs.http,
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let handshake = TlsAcceptor::from(config).accept(tcp);
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(s)) => s,
                Ok(Err(error)) => {
                    debug!(%error, peer = %remote, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(peer = %remote, "tls handshake timed out");
                    return;
                }
            };
            drop(permit);
            let cert_identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| cert_identity(leaf));
            let conn = Conn {
                io: Io::Tls(Box::new(stream)),
                peer: PeerInfo {
                    cert_identity,
                    ..peer
                },
            };
            let _ = tx.send(conn).await;
        });
    }
}

/// The HTTP listener for `axum::serve`: connections whose handshake finished.
pub struct HttpListener {
    rx: mpsc::Receiver<Conn>,
    local: SocketAddr,
}

impl HttpListener {
    pub fn new(listener: TcpListener, tls: Option<Arc<TlsState>>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        Ok(HttpListener {
            rx: accept(listener, tls, Surface::Http),
            local,
        })
    }
}

impl axum::serve::Listener for HttpListener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        match self.rx.recv().await {
            Some(conn) => {
                let addr = conn.peer.remote.unwrap_or(self.local);
                (conn, addr)
            }
            // The accept task only ends when this receiver is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
