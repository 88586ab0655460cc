//! One face over rumqttc's MQTT 3.1.1 and 5 clients: what the pool and the
//! sink need (publish, subscribe, manual ack, a polled event stream).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::tokio_rustls::rustls;
use rumqttc::v5;

use super::{ConnConfig, TlsConfig, Version};

/// Requests queued towards the event loop before `publish` waits.
const REQUEST_CAPACITY: usize = 1024;

/// A handle to send requests on one connection. Cheap to clone.
#[derive(Clone)]
pub(crate) enum Client {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

/// What an incoming QoS >= 1 publish needs to be acknowledged.
#[derive(Clone)]
pub(crate) enum AckHandle {
    V4(rumqttc::Publish),
    V5(v5::mqttbytes::v5::Publish),
}

/// A received message.
pub(crate) struct Incoming {
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) qos: u8,
    pub(crate) pkid: u16,
    /// The broker sends this message again (it had no ack for it).
    pub(crate) dup: bool,
    /// `Some` for QoS >= 1: must be acked (manual acks are on).
    pub(crate) ack: Option<AckHandle>,
}

/// The events the connectors react to; the rest are `Other`.
pub(crate) enum Event {
    /// Connected; `session_present` = the broker kept our session.
    Connected { session_present: bool },
    /// A message arrived.
    Message(Box<Incoming>),
    /// An outgoing QoS 1 (PUBACK) or QoS 2 (PUBCOMP) publish completed.
    Completed,
    /// Anything else.
    Other,
}

/// The connection's event loop; it must be polled for anything to move.
///
/// MQTT requires a client to answer every PUBREL with a PUBCOMP, even for
/// a packet id it no longer knows. rumqttc 0.25 only expects a PUBREL for
/// a QoS 2 message that arrived on the current connection and fails the
/// connection on any other. On a resumed session the broker sends again
/// every PUBREL it has no PUBCOMP for (acks of messages taken before a
/// reconnect, a broker restart or a weir restart), so rumqttc would fail
/// on each reconnect and a QoS 2 source would receive nothing more. The
/// loop therefore makes rumqttc expect a PUBREL for every id after a
/// connect with a session, and for each id it acknowledges (an ack queued
/// before a reconnect is sent on the new connection).
pub(crate) struct EventLoop {
    inner: Loop,
}

enum Loop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

fn qos_of(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5_of(q: u8) -> v5::mqttbytes::QoS {
    match q {
        0 => v5::mqttbytes::QoS::AtMostOnce,
        1 => v5::mqttbytes::QoS::AtLeastOnce,
        _ => v5::mqttbytes::QoS::ExactlyOnce,
    }
}

/// A client id for connections configured without one: unique on this
/// host for the process lifetime.
fn generated_client_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("weir-{}-{:x}-{n}", std::process::id(), nanos & 0xffff_ffff)
}

/// Checks what [`connect`] would reject (TLS material), without
/// connecting.
///
/// # Errors
/// Invalid certificates or keys.
pub(crate) fn check(cfg: &ConnConfig) -> Result<(), String> {
    cfg.tls.as_ref().map(tls_config).transpose().map(|_| ())
}

/// Opens a connection (lazily: it connects on the first poll).
///
/// # Errors
/// Invalid TLS material.
pub(crate) fn connect(cfg: &ConnConfig, manual_acks: bool) -> Result<(Client, EventLoop), String> {
    let id = cfg.client_id.clone().unwrap_or_else(generated_client_id);
    let transport = match &cfg.tls {
        None => rumqttc::Transport::Tcp,
        Some(t) => rumqttc::Transport::Tls(tls_config(t)?),
    };
    let keep_alive = Duration::from_secs(cfg.keep_alive_s);
    match cfg.version {
        Version::V311 => {
            let mut o = rumqttc::MqttOptions::new(id, cfg.host.clone(), cfg.port);
            o.set_keep_alive(keep_alive)
                .set_clean_session(cfg.clean_session)
                .set_manual_acks(manual_acks)
                .set_max_packet_size(256 * 1024 * 1024, 256 * 1024 * 1024)
                .set_transport(transport);
            if let Some(u) = &cfg.username {
                o.set_credentials(u.clone(), cfg.password.clone().unwrap_or_default());
            }
            let (c, l) = rumqttc::AsyncClient::new(o, REQUEST_CAPACITY);
            Ok((Client::V4(c), EventLoop::new(Loop::V4(Box::new(l)))))
        }
        Version::V5 => {
            let mut o = v5::MqttOptions::new(id, cfg.host.clone(), cfg.port);
            o.set_keep_alive(keep_alive)
                .set_clean_start(cfg.clean_session)
                .set_manual_acks(manual_acks)
                .set_max_packet_size(Some(256 * 1024 * 1024))
                .set_transport(transport);
            if !cfg.clean_session {
                // MQTT 5 ends a session at disconnect unless it has an expiry.
                o.set_session_expiry_interval(Some(u32::MAX));
            }
            if let Some(u) = &cfg.username {
                o.set_credentials(u.clone(), cfg.password.clone().unwrap_or_default());
            }
            let (c, l) = v5::AsyncClient::new(o, REQUEST_CAPACITY);
            Ok((Client::V5(c), EventLoop::new(Loop::V5(Box::new(l)))))
        }
    }
}

impl Client {
    /// Queues a publish; waits while the request queue is full.
    pub(crate) async fn publish(&self, topic: &str, qos: u8, retain: bool, payload: Vec<u8>) -> Result<(), String> {
        match self {
            Client::V4(c) => c.publish(topic, qos_of(qos), retain, payload).await.map_err(|e| e.to_string()),
            Client::V5(c) => c.publish(topic, qos5_of(qos), retain, payload).await.map_err(|e| e.to_string()),
        }
    }

    /// Queues a subscription.
    pub(crate) async fn subscribe(&self, filter: &str, qos: u8) -> Result<(), String> {
        match self {
            Client::V4(c) => c.subscribe(filter, qos_of(qos)).await.map_err(|e| e.to_string()),
            Client::V5(c) => c.subscribe(filter, qos5_of(qos)).await.map_err(|e| e.to_string()),
        }
    }

    /// Queues an unsubscription.
    pub(crate) async fn unsubscribe(&self, filter: &str) -> Result<(), String> {
        match self {
            Client::V4(c) => c.unsubscribe(filter).await.map_err(|e| e.to_string()),
            Client::V5(c) => c.unsubscribe(filter).await.map_err(|e| e.to_string()),
        }
    }

    /// Queues the acknowledgement of a received message.
    pub(crate) async fn ack(&self, h: &AckHandle) -> Result<(), String> {
        match (self, h) {
            (Client::V4(c), AckHandle::V4(p)) => c.ack(p).await.map_err(|e| e.to_string()),
            (Client::V5(c), AckHandle::V5(p)) => c.ack(p).await.map_err(|e| e.to_string()),
            _ => Err("ack handle of another protocol version".into()),
        }
    }

    /// Like [`Client::ack`] without waiting; fails when the queue is full.
    pub(crate) fn try_ack(&self, h: &AckHandle) -> Result<(), String> {
        match (self, h) {
            (Client::V4(c), AckHandle::V4(p)) => c.try_ack(p).map_err(|e| e.to_string()),
            (Client::V5(c), AckHandle::V5(p)) => c.try_ack(p).map_err(|e| e.to_string()),
            _ => Err("ack handle of another protocol version".into()),
        }
    }

    /// Asks the event loop to disconnect (it then returns an error).
    pub(crate) fn try_disconnect(&self) {
        let _ = match self {
            Client::V4(c) => c.try_disconnect().map_err(|e| e.to_string()),
            Client::V5(c) => c.try_disconnect().map_err(|e| e.to_string()),
        };
    }
}

impl EventLoop {
    fn new(inner: Loop) -> EventLoop {
        EventLoop { inner }
    }

    /// The next event; connects first if not connected. An error means the
    /// connection is down: call again (after a pause) to reconnect.
    pub(crate) async fn poll(&mut self) -> Result<Event, String> {
        match &mut self.inner {
            Loop::V4(l) => {
                use rumqttc::{Event as E, Packet as P};
                Ok(match l.poll().await.map_err(|e| e.to_string())? {
                    E::Incoming(P::ConnAck(c)) => {
                        if c.session_present {
                            for pkid in 1..=u16::MAX {
                                expect_release_v4(l, pkid);
                            }
                        }
                        Event::Connected { session_present: c.session_present }
                    }
                    E::Incoming(P::Publish(p)) => Event::Message(Box::new(Incoming {
                        topic: p.topic.clone(),
                        qos: p.qos as u8,
                        pkid: p.pkid,
                        dup: p.dup,
                        payload: p.payload.to_vec(),
                        ack: (p.qos != rumqttc::QoS::AtMostOnce).then(|| {
                            let mut h = rumqttc::Publish::new("", p.qos, Vec::new());
                            h.pkid = p.pkid;
                            AckHandle::V4(h)
                        }),
                    })),
                    E::Incoming(P::PubAck(_) | P::PubComp(_)) => Event::Completed,
                    E::Outgoing(rumqttc::Outgoing::PubRec(pkid)) => {
                        expect_release_v4(l, pkid);
                        Event::Other
                    }
                    _ => Event::Other,
                })
            }
            Loop::V5(l) => {
                use v5::mqttbytes::v5::Packet as P;
                use v5::Event as E;
                Ok(match l.poll().await.map_err(|e| e.to_string())? {
                    E::Incoming(P::ConnAck(c)) => {
                        if c.session_present {
                            for pkid in 1..=u16::MAX {
                                expect_release_v5(l, pkid);
                            }
                        }
                        Event::Connected { session_present: c.session_present }
                    }
                    E::Incoming(P::Publish(p)) => Event::Message(Box::new(Incoming {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        qos: p.qos as u8,
                        pkid: p.pkid,
                        dup: p.dup,
                        payload: p.payload.to_vec(),
                        ack: (p.qos != v5::mqttbytes::QoS::AtMostOnce).then(|| {
                            let mut h = v5::mqttbytes::v5::Publish::new("", p.qos, Vec::new(), None);
                            h.pkid = p.pkid;
                            AckHandle::V5(h)
                        }),
                    })),
                    E::Incoming(P::PubAck(_) | P::PubComp(_)) => Event::Completed,
                    E::Outgoing(rumqttc::Outgoing::PubRec(pkid)) => {
                        expect_release_v5(l, pkid);
                        Event::Other
                    }
                    _ => Event::Other,
                })
            }
        }
    }
}

/// Makes rumqttc expect a PUBREL for `pkid`: it only does for QoS 2
/// publishes it saw arrive on the current connection. Its state is told
/// of a (empty) publish with that id, and the event that makes is taken
/// back, so nobody receives it.
fn expect_release_v4(l: &mut rumqttc::EventLoop, pkid: u16) {
    let mut p = rumqttc::Publish::new("", rumqttc::QoS::ExactlyOnce, Vec::new());
    p.pkid = pkid;
    let before = l.state.events.len();
    // With manual acks a QoS 2 publish only records its id: no packet, no
    // error.
    let _ = l.state.handle_incoming_packet(rumqttc::Packet::Publish(p));
    l.state.events.truncate(before);
}

/// [`expect_release_v4`] for MQTT 5.
fn expect_release_v5(l: &mut v5::EventLoop, pkid: u16) {
    let mut p = v5::mqttbytes::v5::Publish::new("", v5::mqttbytes::QoS::ExactlyOnce, Vec::new(), None);
    p.pkid = pkid;
    let before = l.state.events.len();
    let _ = l.state.handle_incoming_packet(v5::mqttbytes::v5::Packet::Publish(p));
    l.state.events.truncate(before);
}

/// Pause before reconnect attempt `n` (0-based): 200 ms doubling to 10 s.
pub(crate) fn backoff(n: u32) -> Duration {
    Duration::from_millis((200u64 << n.min(6)).min(10_000))
}

fn tls_config(t: &TlsConfig) -> Result<rumqttc::TlsConfiguration, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if t.insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &t.root_ca {
            Some(ca) => {
                for c in CertificateDer::pem_slice_iter(ca) {
                    roots.add(c.map_err(|e| format!("rootCa: {e}"))?).map_err(|e| format!("rootCa: {e}"))?;
                }
            }
            None => {
                let native = rustls_native_roots();
                roots.add_parsable_certificates(native);
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match &t.client_auth {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("certification: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("privateKey: {e}"))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| e.to_string())?
        }
    };
    Ok(rumqttc::TlsConfiguration::Rustls(Arc::new(config)))
}

/// The platform's trusted roots from the usual CA bundle files (rumqttc
/// does not expose the store it loads); empty if there is none.
fn rustls_native_roots() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .map(|pem| {
            use rustls::pki_types::pem::PemObject;
            rustls::pki_types::CertificateDer::pem_slice_iter(&pem).filter_map(|c| c.ok()).collect()
        })
        .unwrap_or_default()
}

/// `insecureSkipVerify`: accepts any server certificate (signatures are
/// still checked so the handshake is well-formed).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
