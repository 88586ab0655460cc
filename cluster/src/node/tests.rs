use std::sync::Arc;

use raft::eraftpb::{Message, MessageType};
use raft::Storage as _;
use weir_runtime::state::{MemoryBackend, StateBackend};

use super::*;

fn config(id: NodeId) -> NodeConfig {
    NodeConfig { snapshot_interval: 8, compact_keep: 2, ..NodeConfig::new(id) }
}

fn leader(kv: &Arc<dyn StateBackend>) -> RaftNode {
    RaftNode::bootstrap(kv.clone(), 1, "a:1").unwrap();
    let mut n = RaftNode::open(config(1), kv.clone()).unwrap();
    n.campaign().unwrap();
    n.process_ready().unwrap();
    assert!(n.is_leader());
    n
}

/// Every entry a message carries (or acknowledges) is already in the
/// sender's storage when `process_ready` hands the message out.
fn assert_persisted(kv: &Arc<dyn StateBackend>, msgs: &[Message]) {
    let s = crate::storage::RaftStorage::open(kv.clone()).unwrap();
    for m in msgs {
        for e in &m.entries {
            assert_eq!(s.term(e.index).unwrap(), e.term, "entry {} sent before it was persisted", e.index);
        }
        if m.get_msg_type() == MessageType::MsgAppendResponse && !m.reject {
            assert!(s.last() >= m.index, "acknowledged {} before persisting it", m.index);
        }
    }
}

#[test]
fn a_single_node_applies_proposals_and_serves_reads() {
    let kv: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    let mut n = leader(&kv);
    let id = n.propose(Command::PutStream { name: "s".into(), sql: "x".into() }).unwrap();
    let out = n.process_ready().unwrap();
    assert_eq!(out.applied.len(), 1);
    assert_eq!((out.applied[0].id, &out.applied[0].outcome), (id, &Ok(Applied::Done)));
    let id = n.propose(Command::DropTable { name: "t".into() }).unwrap();
    let out = n.process_ready().unwrap();
    assert_eq!(out.applied[0].id, id);
    assert!(matches!(out.applied[0].outcome, Err(Rejection::NotFound { .. })));
    n.read_index(7);
    assert_eq!(n.process_ready().unwrap().reads, vec![7]);
    let s = n.status();
    assert_eq!((s.leader, s.members.len(), s.progress.len()), (Some(1), 1, 1));
}

#[test]
fn restarts_replay_from_the_newest_snapshot_and_compact_the_log() {
    let kv: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    let mut n = leader(&kv);
    for i in 0..20 {
        n.propose(Command::PutStream { name: format!("s{i}"), sql: "x".into() }).unwrap();
        n.process_ready().unwrap();
    }
    let (md, applied) = (n.metadata().clone(), n.applied());
    let first = n.raw.store().first();
    assert!(first > 2, "compacted behind a snapshot (first index {first})");
    drop(n);
    let mut n = RaftNode::open(config(1), kv.clone()).unwrap();
    n.process_ready().unwrap();
    assert_eq!((n.metadata(), n.applied()), (&md, applied));
    // A restarted node's old proposal ids never match the new incarnation's.
    let id = n.propose(Command::PutStream { name: "t".into(), sql: "x".into() });
    assert!(matches!(id, Err(Error::NoLeader)), "not leader before an election");
    for _ in 0..40 {
        n.tick();
        n.process_ready().unwrap();
    }
    let id = n.propose(Command::PutStream { name: "t".into(), sql: "x".into() }).unwrap();
    assert_eq!(id.incarnation, 2, "the second open is incarnation 2");
}

#[test]
fn a_follower_catches_up_by_snapshot_and_nothing_leaves_before_it_is_durable() {
    let kv1: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    let kv2: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    let mut a = leader(&kv1);
    let mut b = RaftNode::open(config(2), kv2.clone()).unwrap();
    for i in 0..12 {
        a.propose(Command::PutStream { name: format!("s{i}"), sql: "x".into() }).unwrap();
        a.process_ready().unwrap();
    }
    a.propose_member_change(MemberChange::Add { id: 2, addr: "b:1".into() }).unwrap();
    assert!(matches!(a.propose_member_change(MemberChange::Remove { id: 2 }), Err(Error::Busy)));
    // Shuttle messages until quiet.
    let mut inflight = a.process_ready().unwrap().messages;
    assert_persisted(&kv1, &inflight);
    for _ in 0..200 {
        let mut next = Vec::new();
        for m in inflight.drain(..) {
            let (node, kv) = if m.to == 1 { (&mut a, &kv1) } else { (&mut b, &kv2) };
            node.step(m).unwrap();
            let out = node.process_ready().unwrap();
            assert_persisted(kv, &out.messages);
            next.extend(out.messages);
        }
        for (node, kv) in [(&mut a, &kv1), (&mut b, &kv2)] {
            node.tick();
            let out = node.process_ready().unwrap();
            assert_persisted(kv, &out.messages);
            next.extend(out.messages);
        }
        inflight = next;
        if b.applied() == a.applied() && b.is_member() {
            break;
        }
    }
    assert_eq!(b.snapshots_installed(), 1);
    assert_eq!(b.metadata(), a.metadata());
    assert_eq!(b.leader(), Some(1));
}

#[test]
fn bad_messages_are_refused_without_harm() {
    let kv: Arc<dyn StateBackend> = Arc::new(MemoryBackend::default());
    let mut n = leader(&kv);
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgAppendResponse);
    m.to = 9;
    m.from = 2;
    assert!(matches!(n.step(m.clone()), Err(Error::Misrouted { to: 9, me: 1 })));
    m.to = 1;
    m.term = n.term();
    assert!(matches!(n.step(m.clone()), Err(Error::UnknownNode { node: 2 })));
    m.set_msg_type(MessageType::MsgHup);
    assert!(n.step(m).is_err());
    assert!(n.is_leader());
    let fresh = RaftNode::open(config(2), Arc::new(MemoryBackend::default())).unwrap();
    assert!(!fresh.is_member());
    let mut fresh = fresh;
    assert!(matches!(fresh.propose(Command::DropRule { id: "r".into() }), Err(Error::NoLeader)));
}
