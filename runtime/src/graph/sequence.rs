//! Merging the instances of a parallel stage back into one ordered stream.
//!
//! With `concurrency: N`, a stateless stage runs as N instances. The stage
//! before it deals data messages round-robin (message k to instance
//! k mod N) and broadcasts control messages (ticks, watermarks, barriers,
//! end) to all of them; every instance answers each data message with
//! exactly one data message. The [`Sequencer`] at the end takes data in
//! the same round-robin order and lets a control message through once it
//! heads every input, so the merged stream is exactly the stream a single
//! instance would have produced — replay stays byte-identical.

use std::collections::VecDeque;

use crate::row::Message;

/// Reorders the outputs of N parallel instances.
#[derive(Debug)]
pub struct Sequencer {
    queues: Vec<VecDeque<Message>>,
    /// Input whose data comes next.
    next: usize,
}

fn is_data(m: &Message) -> bool {
    matches!(m, Message::Data(_) | Message::Payloads(_))
}

impl Sequencer {
    /// Merges `inputs` instances.
    pub fn new(inputs: usize) -> Sequencer {
        Sequencer { queues: (0..inputs.max(1)).map(|_| VecDeque::new()).collect(), next: 0 }
    }

    /// Takes a message from instance `input`; returns the messages now in
    /// order (all tagged input 0).
    pub fn push(&mut self, input: usize, msg: Message) -> Vec<(usize, Message)> {
        let Some(q) = self.queues.get_mut(input) else { return vec![(0, msg)] };
        q.push_back(msg);
        let mut out = Vec::new();
        loop {
            // Errors (sendError) are not 1:1 with data: pass them as they
            // come so they never hold back a control message.
            for q in &mut self.queues {
                while matches!(q.front(), Some(Message::Error(_))) {
                    if let Some(m) = q.pop_front() {
                        out.push((0, m));
                    }
                }
            }
            let n = self.queues.len();
            match self.queues[self.next].front() {
                None => break,
                Some(m) if is_data(m) => {
                    let m = self.queues[self.next].pop_front().expect("front exists");
                    self.next = (self.next + 1) % n;
                    out.push((0, m));
                }
                Some(_) => {
                    // A control message: every input carries it at this
                    // point of the stream; pass it once all have it.
                    if self.queues.iter().any(|q| q.front().is_none_or(is_data)) {
                        break;
                    }
                    let mut first = None;
                    for q in &mut self.queues {
                        let m = q.pop_front();
                        first = first.or(m);
                    }
                    if let Some(m) = first {
                        out.push((0, m));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::{Batch, Row};

    fn data(ts: i64) -> Message {
        Message::Data(Batch::events(vec![Row::new(0, ts, 0)]))
    }

    fn ts_of(out: &[(usize, Message)]) -> Vec<i64> {
        out.iter()
            .map(|(_, m)| match m {
                Message::Data(b) => b.rows[0].ts,
                Message::Tick(t) => -t,
                _ => 0,
            })
            .collect()
    }

    #[test]
    fn restores_round_robin_order_around_control_messages() {
        // Split: d1 -> 0, d2 -> 1, tick -> both, d3 -> 0, d4 -> 1.
        let mut s = Sequencer::new(2);
        // Instance 1 is faster: its output waits for instance 0's.
        assert!(s.push(1, data(2)).is_empty());
        assert!(s.push(1, Message::Tick(9)).is_empty());
        assert!(s.push(1, data(4)).is_empty());
        assert_eq!(ts_of(&s.push(0, data(1))), vec![1, 2]);
        // The tick passes once it heads both inputs, then d3 and d4.
        assert_eq!(ts_of(&s.push(0, Message::Tick(9))), vec![-9]);
        assert_eq!(ts_of(&s.push(0, data(3))), vec![3, 4]);
    }

    #[test]
    fn single_input_passes_through() {
        let mut s = Sequencer::new(1);
        assert_eq!(ts_of(&s.push(0, data(1))), vec![1]);
        assert_eq!(ts_of(&s.push(0, Message::Tick(2))), vec![-2]);
    }
}
