//! The exchange over real TCP on 127.0.0.1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use weir_runtime::row::{Batch, Message, Row};
use weir_runtime::value::Value;

use super::*;

/// Bound of every wait: generous for a loaded 2-core machine.
const LIMIT: Duration = Duration::from_secs(20);

fn hello(rule: &str, from: u32, to: u32, epochs: &[u64]) -> Hello {
    Hello { rule: rule.into(), to, from, epochs: epochs.to_vec() }
}

/// `n` rows of 5 columns; `text` bytes in the string column.
fn batch(n: usize, seed: i64, text: usize) -> Message {
    let s: Arc<str> = Arc::from("x".repeat(text));
    let rows = (0..n as i64)
        .map(|i| Row {
            slots: vec![
                Value::Int(seed * 1000 + i),
                Value::Float(i as f64 / 3.0),
                Value::String(s.clone()),
                Value::Bool(i % 2 == 0),
                Value::Null,
            ],
            ts: seed,
            source: 0,
            nulls: None,
        })
        .collect();
    Message::Data(Batch::events(rows))
}

async fn server() -> ExchangeServer {
    ExchangeServer::bind("127.0.0.1:0".parse().unwrap(), None).await.unwrap()
}

/// Polls the link until `pred` holds for its state.
async fn until(link: &ExchangeLink, what: &str, pred: impl Fn(&LinkState) -> bool) -> LinkState {
    let start = Instant::now();
    loop {
        let s = link.state();
        if pred(&s) {
            return s;
        }
        assert!(start.elapsed() < LIMIT, "{what}: link still {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn recv(inbox: &mut mpsc::Receiver<(u32, Message)>) -> (u32, Message) {
    tokio::time::timeout(LIMIT, inbox.recv()).await.expect("a message in time").expect("inbox open")
}

fn refused(s: &LinkState) -> Option<&Refusal> {
    match s {
        LinkState::Connecting { last: Some(ExchangeError::Refused { refusal, .. }), .. } => Some(refusal),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arrive_in_order_with_the_sender_index() {
    let server = server().await;
    let (inbox_tx, mut inbox) = mpsc::channel(16);
    let reg = server.register("r1", 1, vec![3, 4, 5], inbox_tx);
    let addr = server.local_addr().to_string();
    let script = |from: i64| {
        vec![
            batch(3, from, 4),
            Message::Tick(10 + from),
            Message::Watermark(20 + from),
            batch(1, from + 7, 0),
            Message::Barrier(1),
            Message::Error(format!("bad row {from}")),
            batch(256, from, 16),
            Message::Barrier(2),
            Message::End,
        ]
    };
    let mut links = Vec::new();
    for from in [0u32, 2] {
        let (tx, rx) = mpsc::channel(4);
        links.push(ExchangeLink::spawn(addr.clone(), hello("r1", from, 1, &[3, 4, 5]), None, rx));
        let msgs = script(from as i64);
        tokio::spawn(async move {
            for m in msgs {
                tx.send((from, m)).await.unwrap();
            }
        });
    }
    let mut got: [Vec<Message>; 3] = Default::default();
    for _ in 0..18 {
        let (from, m) = recv(&mut inbox).await;
        got[from as usize].push(m);
    }
    assert_eq!(got[0], script(0));
    assert_eq!(got[2], script(2));
    assert!(got[1].is_empty());
    // The queues closed after End: each link ends cleanly.
    for link in links {
        tokio::time::timeout(LIMIT, link.finished()).await.unwrap().unwrap();
    }
    // A clean close is not a broken link.
    assert!(tokio::time::timeout(Duration::from_millis(300), reg.broken()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_started_before_its_registration_connects_once_registered() {
    let server = server().await;
    let (tx, rx) = mpsc::channel(4);
    let link = ExchangeLink::spawn(server.local_addr().to_string(), hello("r", 0, 1, &[1, 1]), None, rx);
    // Queued before the shard exists: kept, not lost.
    tx.send((0, Message::Barrier(7))).await.unwrap();
    let s = until(
        &link,
        "refused for a missing shard",
        |s| matches!(s, LinkState::Connecting { attempts, .. } if *attempts >= 2),
    )
    .await;
    assert!(matches!(refused(&s), Some(Refusal::NoShard { shard: 1, .. })), "{s:?}");
    let (inbox_tx, mut inbox) = mpsc::channel(4);
    let _reg = server.register("r", 1, vec![1, 1], inbox_tx);
    assert_eq!(recv(&mut inbox).await, (0, Message::Barrier(7)));
    tx.send((0, Message::End)).await.unwrap();
    assert_eq!(recv(&mut inbox).await, (0, Message::End));
    assert!(matches!(link.state(), LinkState::Connected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_to_a_closed_port_keeps_retrying() {
    // A port that was free a moment ago: nobody listens there.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let (_tx, rx) = mpsc::channel(4);
    let link = ExchangeLink::spawn(addr.to_string(), hello("r", 0, 1, &[1]), None, rx);
    let s = until(&link, "connection refused", |s| {
        matches!(s, LinkState::Connecting { attempts, last: Some(ExchangeError::Connect { .. }) } if *attempts >= 2)
    })
    .await;
    assert!(s.error_text().contains(&addr.to_string()), "the error names the peer: {s:?}");
}

impl LinkState {
    fn error_text(&self) -> String {
        match self {
            LinkState::Connecting { last: Some(e), .. } | LinkState::Failed(e) => e.to_string(),
            _ => String::new(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_of_another_generation_is_refused_and_retried() {
    let server = server().await;
    let (old_tx, _old_inbox) = mpsc::channel(4);
    let old = server.register("r", 1, vec![2, 5], old_tx);
    let (tx, rx) = mpsc::channel(4);
    let link = ExchangeLink::spawn(server.local_addr().to_string(), hello("r", 0, 1, &[2, 6]), None, rx);
    let s = until(
        &link,
        "refused for the generation",
        |s| matches!(s, LinkState::Connecting { attempts, .. } if *attempts >= 2),
    )
    .await;
    assert_eq!(refused(&s), Some(&Refusal::Generation { here: vec![2, 5], theirs: vec![2, 6] }));
    // Refusals are retried, never a failure.
    assert!(tokio::time::timeout(Duration::from_millis(300), link.failed()).await.is_err());
    // The shard restarts in the sender's generation: the link gets in.
    let (inbox_tx, mut inbox) = mpsc::channel(4);
    let _new = server.register("r", 1, vec![2, 6], inbox_tx);
    drop(old); // does not unregister the newer registration
    tx.send((0, Message::Tick(1))).await.unwrap();
    assert_eq!(recv(&mut inbox).await, (0, Message::Tick(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_registration_after_acceptance_fails_the_link() {
    let server = server().await;
    let (inbox_tx, mut inbox) = mpsc::channel(4);
    let reg = server.register("r", 0, vec![1], inbox_tx);
    let (tx, rx) = mpsc::channel(4);
    let link = ExchangeLink::spawn(server.local_addr().to_string(), hello("r", 1, 0, &[1]), None, rx);
    tx.send((1, Message::Barrier(1))).await.unwrap();
    assert_eq!(recv(&mut inbox).await, (1, Message::Barrier(1)));
    let failed = link.failed();
    drop(reg);
    let e = tokio::time::timeout(LIMIT, failed).await.expect("the link notices the closed connection");
    assert!(matches!(e, ExchangeError::Closed { .. } | ExchangeError::Lost { .. }), "{e}");
    assert!(e.to_string().contains("rule \"r\" shard 1 -> 0"), "{e}");
    // No reconnect: the link stays failed even though sends would be possible.
    assert!(matches!(link.state(), LinkState::Failed(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_the_server_fails_the_link() {
    let server = server().await;
    let (inbox_tx, mut inbox) = mpsc::channel(4);
    let _reg = server.register("r", 0, vec![1], inbox_tx);
    let (tx, rx) = mpsc::channel(4);
    let link = ExchangeLink::spawn(server.local_addr().to_string(), hello("r", 1, 0, &[1]), None, rx);
    tx.send((1, Message::Tick(5))).await.unwrap();
    assert_eq!(recv(&mut inbox).await, (1, Message::Tick(5)));
    tokio::time::timeout(LIMIT, server.shutdown()).await.unwrap();
    let e = tokio::time::timeout(LIMIT, link.failed()).await.expect("the link fails");
    assert!(matches!(e, ExchangeError::Closed { .. } | ExchangeError::Lost { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_from_the_same_shard_is_refused() {
    let server = server().await;
    let (inbox_tx, mut inbox) = mpsc::channel(4);
    let _reg = server.register("r", 0, vec![1], inbox_tx);
    let addr = server.local_addr().to_string();
    let (tx, rx) = mpsc::channel(4);
    let _first = ExchangeLink::spawn(addr.clone(), hello("r", 1, 0, &[1]), None, rx);
    tx.send((1, Message::Tick(1))).await.unwrap();
    assert_eq!(recv(&mut inbox).await, (1, Message::Tick(1)));
    let (_tx2, rx2) = mpsc::channel(4);
    let second = ExchangeLink::spawn(addr, hello("r", 1, 0, &[1]), None, rx2);
    let s = until(&second, "refused as a duplicate", |s| refused(s).is_some()).await;
    assert_eq!(refused(&s), Some(&Refusal::Duplicate { from: 1 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_inbox_stops_draining_the_sender_queue() {
    const TOTAL: usize = 200;
    let server = server().await;
    let (inbox_tx, mut inbox) = mpsc::channel(1);
    let _reg = server.register("r", 0, vec![1], inbox_tx);
    let (tx, rx) = mpsc::channel(2);
    let _link = ExchangeLink::spawn(server.local_addr().to_string(), hello("r", 1, 0, &[1]), None, rx);
    // About 1 MiB per frame: 200 MiB cannot hide in socket buffers.
    let msg = |i: usize| batch(256, i as i64, 4000);
    let sent = Arc::new(AtomicUsize::new(0));
    let producer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            for i in 0..TOTAL {
                tx.send((1, msg(i))).await.unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // Wait until the producer stalls: no progress for 500 ms.
    let start = Instant::now();
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = sent.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        last = now;
        assert!(start.elapsed() < LIMIT, "the producer never stalled ({now} sent)");
    }
    assert!(last < 40, "{last} of {TOTAL} frames left the queue with nobody reading the inbox");
    // Reading the inbox resumes the flow; everything arrives.
    for i in 0..TOTAL {
        assert_eq!(recv(&mut inbox).await, (1, msg(i)), "message {i}");
    }
    producer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_oversize_frames_close_the_connection_not_the_server() {
    let server = server().await;
    let (inbox_tx, mut inbox) = mpsc::channel(4);
    let reg = server.register("r", 0, vec![1], inbox_tx);
    let addr = server.local_addr();
    let bad_frames: [&[u8]; 3] = [
        &[0xff, 0xff, 0xff, 0xff, 1, 2, 3], // 4 GiB announced
        &[0, 0, 0, 3, 0xff, 0xff, 0xff],    // garbage body
        &[0, 0, 0, 9, 1, 2],                // cut short
    ];
    let broken = reg.broken();
    for (i, bad) in bad_frames.iter().enumerate() {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&wire::encode(&hello("r", i as u32, 0, &[1]), 1024).unwrap()).await.unwrap();
        let answer: Option<Answer> = wire::read(&mut s, 1024).await.unwrap();
        assert_eq!(answer, Some(Answer::Accept));
        s.write_all(bad).await.unwrap();
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        // The server closes the connection (EOF or reset), sending nothing.
        let n = tokio::time::timeout(LIMIT, s.read_to_end(&mut rest)).await.unwrap().unwrap_or(0);
        assert_eq!(n, 0);
    }
    // A garbage Hello gets no answer either.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0, 0, 0, 2, 0xff, 0xff]).await.unwrap();
    let mut rest = Vec::new();
    assert_eq!(tokio::time::timeout(LIMIT, s.read_to_end(&mut rest)).await.unwrap().unwrap_or(0), 0);
    assert!(inbox.try_recv().is_err(), "nothing was delivered");
    // The registration learns that a link broke (the first one: too long).
    let e = tokio::time::timeout(LIMIT, broken).await.unwrap();
    assert!(e.to_string().contains("exceeds the limit"), "{e}");
    // The server still serves.
    let (tx, rx) = mpsc::channel(4);
    let _link = ExchangeLink::spawn(addr.to_string(), hello("r", 9, 0, &[1]), None, rx);
    tx.send((9, Message::End)).await.unwrap();
    assert_eq!(recv(&mut inbox).await, (9, Message::End));
    // Random bytes never panic the decoder.
    for bytes in crate::fuzz::random_bytes(0x5eed, 2000, 80) {
        let mut r = bytes.as_slice();
        let _ = wire::read::<Message, _>(&mut r, 1 << 20).await;
        let _ = wire::read::<Hello, _>(&mut bytes.as_slice(), 1 << 20).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_frame_limit_fails_the_link() {
    let config = ExchangeConfig { max_frame: 4096, ..ExchangeConfig::default() };
    let server = ExchangeServer::bind_with("127.0.0.1:0".parse().unwrap(), config.clone()).await.unwrap();
    let (inbox_tx, mut inbox) = mpsc::channel(4);
    let _reg = server.register("r", 0, vec![1], inbox_tx);
    let (tx, rx) = mpsc::channel(4);
    let link = ExchangeLink::spawn_with(server.local_addr().to_string(), hello("r", 1, 0, &[1]), config, rx);
    tx.send((1, batch(2, 1, 8))).await.unwrap();
    assert_eq!(recv(&mut inbox).await, (1, batch(2, 1, 8)));
    tx.send((1, batch(64, 1, 100))).await.unwrap();
    let e = tokio::time::timeout(LIMIT, link.failed()).await.unwrap();
    assert!(matches!(e, ExchangeError::FrameTooLarge { max: 4096, .. }), "{e}");
    // A message from another shard than the Hello's is a caller bug: the
    // link fails rather than mislabel it.
    let (tx, rx) = mpsc::channel(4);
    let (inbox_tx, _inbox) = mpsc::channel(4);
    let _reg2 = server.register("r", 5, vec![1], inbox_tx);
    let link = ExchangeLink::spawn(server.local_addr().to_string(), hello("r", 1, 5, &[1]), None, rx);
    tx.send((2, Message::End)).await.unwrap();
    let e = tokio::time::timeout(LIMIT, link.failed()).await.unwrap();
    assert!(matches!(e, ExchangeError::WrongSender { got: 2, .. }), "{e}");
    assert!(ExchangeConfig { max_frame: 0, ..ExchangeConfig::default() }.validate().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_the_hello() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let config = ExchangeConfig { hello_timeout: Duration::from_millis(100), ..ExchangeConfig::default() };
    let (_tx, rx) = mpsc::channel(4);
    let link = ExchangeLink::spawn_with(addr, hello("r", 0, 1, &[1]), config, rx);
    until(&link, "hello timeout", |s| {
        matches!(s, LinkState::Connecting { last: Some(ExchangeError::Timeout { what: "hello", .. }), .. })
    })
    .await;
}

/// Certificates for `nodes` under one new CA, or `None` without openssl.
fn certs(dir: &std::path::Path, nodes: &[&str]) -> Option<()> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster-certs.sh");
    let out = std::process::Command::new("bash").arg(script).arg(dir).args(nodes).output().ok()?;
    if !out.status.success() {
        eprintln!("cluster-certs.sh failed (is openssl installed?): {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(())
}

fn tls(dir: &std::path::Path, node: &str) -> ClusterTls {
    ClusterTls::from_pem_files(&dir.join(format!("{node}.pem")), &dir.join(format!("{node}.key")), &dir.join("ca.pem"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_links_deliver_and_plain_links_are_kept_out() {
    let dir = tempfile::tempdir().unwrap();
    if certs(dir.path(), &["a", "b"]).is_none() {
        return;
    }
    let server = ExchangeServer::bind("127.0.0.1:0".parse().unwrap(), Some(tls(dir.path(), "a"))).await.unwrap();
    let (inbox_tx, mut inbox) = mpsc::channel(4);
    let _reg = server.register("r", 0, vec![4, 4], inbox_tx);
    let addr = server.local_addr().to_string();
    let (tx, rx) = mpsc::channel(4);
    let link = ExchangeLink::spawn(addr.clone(), hello("r", 1, 0, &[4, 4]), Some(tls(dir.path(), "b")), rx);
    let sent = [batch(256, 3, 8), Message::Barrier(3), Message::End];
    for m in &sent {
        tx.send((1, m.clone())).await.unwrap();
    }
    for m in &sent {
        assert_eq!(&recv(&mut inbox).await, &(1, m.clone()));
    }
    drop(tx);
    tokio::time::timeout(LIMIT, link.finished()).await.unwrap().unwrap();
    // Without TLS the link never gets in (and keeps trying).
    let (tx, rx) = mpsc::channel(4);
    let plain = ExchangeLink::spawn(addr, hello("r", 2, 0, &[4, 4]), None, rx);
    tx.send((2, Message::End)).await.unwrap();
    until(&plain, "plain link refused", |s| matches!(s, LinkState::Connecting { attempts, .. } if *attempts >= 2))
        .await;
    assert!(inbox.try_recv().is_err());
}

/// Rows per second through one link on loopback, 256-row batches of 5
/// columns: `cargo test -p weir-cluster --release exchange_throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn exchange_throughput() {
    const BATCHES: usize = 4000;
    let server = server().await;
    let (inbox_tx, mut inbox) = mpsc::channel(64);
    let _reg = server.register("r", 0, vec![1], inbox_tx);
    let (tx, rx) = mpsc::channel(64);
    let _link = ExchangeLink::spawn(server.local_addr().to_string(), hello("r", 1, 0, &[1]), None, rx);
    let msg = batch(256, 1, 12);
    let start = Instant::now();
    tokio::spawn(async move {
        for _ in 0..BATCHES {
            tx.send((1, msg.clone())).await.unwrap();
        }
    });
    let mut rows = 0;
    for _ in 0..BATCHES {
        if let (_, Message::Data(b)) = recv(&mut inbox).await {
            rows += b.rows.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("exchange: {rows} rows in {secs:.3} s = {:.0} rows/s", rows as f64 / secs);
}
