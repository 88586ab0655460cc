//! Optional mutual TLS between the nodes of a cluster.
//!
//! Without it, anything that reaches a node's cluster or replica port can
//! send raft messages and rule state. With it, every connection between
//! nodes (raft traffic, join requests, state replication) is TLS 1.2+ and
//! both ends present a certificate signed by the cluster's CA: a peer
//! without one is refused during the handshake.
//!
//! Nodes reach each other by whatever address they advertise, so names are
//! not checked against addresses: every node certificate carries the DNS
//! name [`CLUSTER_SERVER_NAME`] (`scripts/cluster-certs.sh` makes a CA and
//! such certificates), and membership is proven by the CA's signature.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// How long a TLS handshake may take before the connection is dropped
/// (a peer that connects and says nothing must not hold a task forever).
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The DNS name every node certificate must carry (and that each node
/// checks the other side's certificate for).
pub const CLUSTER_SERVER_NAME: &str = "weir-cluster";

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("cluster TLS: {what} {path}: {reason}")]
    Pem {
        /// Which file ("certificate", "private key", "CA certificate").
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the combination (a key that does not match the
    /// certificate, an unusable CA).
    #[error("cluster TLS: {0}")]
    Config(String),
}

/// A node's TLS identity and the cluster CA, ready for both ends of a
/// connection. Cheap to clone.
#[derive(Clone)]
pub struct ClusterTls {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterTls")
    }
}

/// Two settings are the same if they are the same loaded files.
impl PartialEq for ClusterTls {
    fn eq(&self, other: &ClusterTls) -> bool {
        Arc::ptr_eq(&self.server, &other.server) && Arc::ptr_eq(&self.client, &other.client)
    }
}

impl Eq for ClusterTls {}

impl ClusterTls {
    /// Loads this node's certificate chain and private key and the cluster
    /// CA certificate(s), all PEM.
    ///
    /// # Errors
    /// [`TlsError`] naming the file or setting that is wrong.
    pub fn from_pem_files(cert: &Path, key: &Path, ca: &Path) -> Result<ClusterTls, TlsError> {
        let pem = |what, path: &Path, reason: String| TlsError::Pem { what, path: path.to_path_buf(), reason };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem("certificate", cert, e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| pem("certificate", cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(pem("certificate", cert, "no CERTIFICATE block".into()));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem("private key", key, e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
            .map_err(|e| pem("CA certificate", ca, e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| pem("CA certificate", ca, e.to_string()))?;
        for c in cas {
            roots.add(c).map_err(|e| pem("CA certificate", ca, e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(pem("CA certificate", ca, "no CERTIFICATE block".into()));
        }
        let roots = Arc::new(roots);
        let config = |e: rustls::Error| TlsError::Config(e.to_string());
        let verifier = rustls::server::WebPkiClientVerifier::builder(roots.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let server = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key_der.clone_key())
            .map_err(config)?;
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key_der)
            .map_err(config)?;
        Ok(ClusterTls { server: Arc::new(server), client: Arc::new(client) })
    }

    fn server_name() -> ServerName<'static> {
        ServerName::try_from(CLUSTER_SERVER_NAME).expect("a valid DNS name")
    }

    /// A blocking client session over `tcp` (state replication writes from
    /// synchronous code); the handshake runs on first use.
    pub(crate) fn client_blocking(
        &self,
        tcp: std::net::TcpStream,
    ) -> io::Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>> {
        let conn = rustls::ClientConnection::new(self.client.clone(), Self::server_name()).map_err(io::Error::other)?;
        Ok(rustls::StreamOwned::new(conn, tcp))
    }
}

/// A connection between nodes, plain or TLS.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The client end of a connection to another node: TLS when configured.
pub(crate) async fn connect(tls: Option<&ClusterTls>, tcp: TcpStream) -> io::Result<Box<dyn Stream>> {
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Box::new(tcp)),
        Some(t) => {
            let connector = tokio_rustls::TlsConnector::from(t.client.clone());
            let handshake = connector.connect(ClusterTls::server_name(), tcp);
            Ok(Box::new(within_handshake_timeout(handshake).await?))
        }
    }
}

/// The server end of a connection from another node: TLS when configured
/// (a peer without a certificate of the cluster CA fails here).
pub(crate) async fn accept(tls: Option<&ClusterTls>, tcp: TcpStream) -> io::Result<Box<dyn Stream>> {
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Box::new(tcp)),
        Some(t) => {
            let handshake = tokio_rustls::TlsAcceptor::from(t.server.clone()).accept(tcp);
            Ok(Box::new(within_handshake_timeout(handshake).await?))
        }
    }
}

/// Serves `listener` until `stop` is notified (or the future is dropped,
/// which also drops the connections): each connection's TLS handshake
/// ([`accept`]) and then `handle` run in a task of their own, so a slow
/// peer never holds up the accept loop. `service` names the listener in
/// logs ("replication", "exchange").
pub(crate) async fn serve<F, Fut>(
    listener: tokio::net::TcpListener,
    tls: Option<ClusterTls>,
    stop: Arc<tokio::sync::Notify>,
    service: &'static str,
    handle: F,
) where
    F: Fn(Box<dyn Stream>, std::net::SocketAddr) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.notified() => {
                conns.shutdown().await;
                return;
            }
            r = listener.accept() => match r {
                Ok((tcp, peer)) => {
                    tracing::debug!(%peer, service, "connection accepted");
                    let (tls, handle) = (tls.clone(), handle.clone());
                    conns.spawn(async move {
                        match accept(tls.as_ref(), tcp).await {
                            Ok(stream) => handle(stream, peer).await,
                            Err(e) => tracing::warn!(%peer, error = %e, service, "refused a connection"),
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, service, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn within_handshake_timeout<T>(handshake: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}
