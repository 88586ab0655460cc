//! Barrier alignment for operators with several inputs.
//!
//! When barrier `n` arrives on one input, that input is blocked: its later
//! messages wait until barrier `n` has arrived on every input. Then the
//! barrier goes downstream once and the held messages are released in
//! order. This is what makes a checkpoint a consistent cut (aligned
//! barriers, as in Flink and Arroyo).

use std::collections::VecDeque;

use crate::row::Message;

/// The alignment state machine of one operator.
#[derive(Debug)]
pub struct Aligner {
    inputs: usize,
    /// Barrier being aligned and which inputs delivered it.
    current: Option<(u64, Vec<bool>)>,
    /// Messages of blocked inputs, in arrival order.
    held: VecDeque<(usize, Message)>,
    ended: Vec<bool>,
}

impl Aligner {
    /// For an operator with `inputs` inputs.
    pub fn new(inputs: usize) -> Aligner {
        let inputs = inputs.max(1);
        Aligner { inputs, current: None, held: VecDeque::new(), ended: vec![false; inputs] }
    }

    /// Takes one message from `input`; returns what the operator should
    /// handle now, in order. Barriers come out once, when aligned; `End`
    /// comes out once, when every input has ended.
    pub fn push(&mut self, input: usize, msg: Message) -> Vec<(usize, Message)> {
        let mut ready = Vec::new();
        self.accept(input, msg, &mut ready);
        ready
    }

    fn blocked(&self, input: usize) -> bool {
        matches!(&self.current, Some((_, got)) if got.get(input).copied().unwrap_or(false))
    }

    fn accept(&mut self, input: usize, msg: Message, ready: &mut Vec<(usize, Message)>) {
        if self.blocked(input) {
            self.held.push_back((input, msg));
            return;
        }
        match msg {
            Message::Barrier(n) if self.inputs > 1 => {
                let got = match &mut self.current {
                    Some((_, got)) => got,
                    None => {
                        self.current = Some((n, vec![false; self.inputs]));
                        &mut self.current.as_mut().expect("just set").1
                    }
                };
                if let Some(g) = got.get_mut(input) {
                    *g = true;
                }
                // Ended inputs count as aligned.
                let all = got.iter().zip(&self.ended).all(|(g, e)| *g || *e);
                if all {
                    self.current = None;
                    ready.push((input, Message::Barrier(n)));
                    let held: Vec<_> = self.held.drain(..).collect();
                    for (i, m) in held {
                        self.accept(i, m, ready);
                    }
                }
            }
            Message::End => {
                if let Some(e) = self.ended.get_mut(input) {
                    *e = true;
                }
                if self.ended.iter().all(|e| *e) {
                    ready.push((input, Message::End));
                } else if let Some((n, got)) = &self.current {
                    // The ended input can no longer hold the barrier back.
                    if got.iter().zip(&self.ended).all(|(g, e)| *g || *e) {
                        let n = *n;
                        self.current = None;
                        ready.push((input, Message::Barrier(n)));
                        let held: Vec<_> = self.held.drain(..).collect();
                        for (i, m) in held {
                            self.accept(i, m, ready);
                        }
                    }
                }
            }
            m => ready.push((input, m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_inputs_past_the_barrier_until_aligned() {
        let mut a = Aligner::new(2);
        assert!(a.push(0, Message::Barrier(1)).is_empty());
        // Input 0 is blocked: its tick waits.
        assert!(a.push(0, Message::Tick(5)).is_empty());
        assert_eq!(a.push(1, Message::Tick(4)), vec![(1, Message::Tick(4))]);
        let out = a.push(1, Message::Barrier(1));
        assert_eq!(out, vec![(1, Message::Barrier(1)), (0, Message::Tick(5))]);
    }

    #[test]
    fn end_once_all_inputs_ended_and_releases_barrier() {
        let mut a = Aligner::new(2);
        assert!(a.push(0, Message::Barrier(7)).is_empty());
        let out = a.push(1, Message::End);
        assert_eq!(out, vec![(1, Message::Barrier(7))]);
        assert_eq!(a.push(0, Message::End), vec![(0, Message::End)]);
    }

    #[test]
    fn single_input_passes_through() {
        let mut a = Aligner::new(1);
        assert_eq!(a.push(0, Message::Barrier(1)), vec![(0, Message::Barrier(1))]);
    }
}
