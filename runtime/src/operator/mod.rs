//! Operators: the synchronous logic of each plan stage.
//!
//! An operator knows nothing of actors, channels or wall time. Its actor
//! shell (see [`crate::graph`]) feeds it rows and time and sends on what it
//! puts into [`Output`]. That keeps every operator testable as plain code
//! and lets replay, the server and the cluster share them.

mod aggregate;
mod analytic;
mod decode;
mod filter;
mod join;
mod order;
mod project;
mod watermark;
pub mod window;

use std::sync::Arc;

pub use aggregate::{AggregateOp, AggregateSite};
pub use analytic::{AnalyticOp, AnalyticSite};
pub use decode::DecodeOp;
pub use filter::FilterOp;
pub use join::{JoinOp, JoinStep, TableState};
pub use order::OrderOp;
pub use project::{Layer, ProjectItem, ProjectOp};
pub use watermark::WatermarkOp;
pub use window::{StateConditions, WindowOp};

use crate::expr::EvalContext;
use crate::functions::FuncContext;
use crate::row::{Batch, Message, WindowRange};
use crate::state::StateResult;

/// What an operator produced while handling one input.
#[derive(Debug, Default)]
pub struct Output {
    /// Messages to send downstream, in order.
    pub messages: Vec<Message>,
    /// Rows dropped because of errors: the message of each.
    pub errors: Vec<String>,
}

impl Output {
    /// Queues a batch unless it is empty independent events (an empty
    /// window emission is meaningful and is kept).
    pub fn data(&mut self, batch: Batch) {
        // An empty snapshot still empties its table.
        if batch.window.is_some() || batch.snapshot || !batch.rows.is_empty() {
            self.messages.push(Message::Data(batch));
        }
    }

    /// Records a dropped row.
    pub fn error(&mut self, e: impl ToString) {
        self.errors.push(e.to_string());
    }
}

/// The synchronous core of a plan stage.
pub trait Operator: Send {
    /// Handles rows from input `input`; `now` is the rule clock's time.
    fn process(&mut self, input: usize, batch: Batch, now: i64, out: &mut Output);

    /// Handles raw payloads (only decoders do).
    fn process_payloads(&mut self, payloads: Vec<crate::row::Payload>, now: i64, out: &mut Output) {
        let _ = (payloads, now, out);
    }

    /// Processing time reached `now` (ms): fire due timers.
    fn on_tick(&mut self, now: i64, out: &mut Output) {
        let _ = (now, out);
    }

    /// Event time reached `wm` (ms).
    fn on_watermark(&mut self, wm: i64, out: &mut Output) {
        let _ = (wm, out);
    }

    /// A watermark arrived on input `input`. By default it is the event
    /// time of the whole rule: handled by [`Operator::on_watermark`] and
    /// passed on. The watermark generator of a sharded rule takes it as
    /// the progress of one source shard instead (see `crate::shard`).
    fn on_input_watermark(&mut self, input: usize, wm: i64, out: &mut Output) {
        let _ = input;
        self.on_watermark(wm, out);
        out.messages.push(crate::row::Message::Watermark(wm));
    }

    /// The next processing-time instant this operator must be woken at.
    fn next_timer(&self) -> Option<i64> {
        None
    }

    /// The operator's state for a checkpoint; `None` when it keeps none.
    ///
    /// # Errors
    /// Encoding failed.
    fn snapshot(&self) -> StateResult<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Restores a state taken by [`Operator::snapshot`].
    ///
    /// # Errors
    /// The bytes are not a state of this operator (corrupt checkpoint).
    fn restore(&mut self, bytes: &[u8]) -> StateResult<()> {
        let _ = bytes;
        Ok(())
    }
}

/// Rule-wide facts operators evaluate expressions with.
#[derive(Debug, Clone)]
pub struct RuleContext {
    /// Rule id.
    pub rule_id: Arc<str>,
    /// Rule start time, ms (from the clock).
    pub start_ms: i64,
}

impl RuleContext {
    /// An evaluation context at `now` for an emission.
    pub fn eval(&self, now: i64, window: Option<WindowRange>) -> EvalContext<'_> {
        EvalContext {
            func: FuncContext { rule_id: &self.rule_id, now_ms: now, rule_start_ms: self.start_ms },
            window,
            row_number: 0,
            batch_index: None,
        }
    }
}
