//! Windows: tumbling, hopping, sliding, session, count and state, in
//! processing time (driven by clock ticks) and event time (driven by
//! watermarks), with eKuiper's alignment, content and `window_start`
//! rules.
//!
//! Rows are buffered in arrival order (event time: in event-time order, as
//! the watermark operator releases them). A firing "scans" the buffer at a
//! right edge: it emits the rows inside, drops the rows no later window can
//! use, and records the trigger time that the next window's start derives
//! from.

mod align;
mod count;
mod session;
mod state;

use std::collections::VecDeque;

use weir_planner::{TimeUnit, WindowSpec};

pub(crate) use align::aligned_end;
use state::StateWindows;

use crate::expr::Expr;
use crate::operator::{Operator, Output, RuleContext};
use crate::row::{Batch, Row, WindowRange};
use crate::state::{codec, StateResult};

/// The compiled conditions of a state window.
pub struct StateConditions {
    /// `OVER (PARTITION BY ...)`.
    pub partition: Vec<Expr>,
    /// Begin (or single) condition.
    pub begin: Expr,
    /// Emit condition of the two-condition form.
    pub emit: Option<Expr>,
}

/// The window operator.
pub struct WindowOp {
    spec: WindowSpec,
    unit: TimeUnit,
    filter: Option<Expr>,
    trigger: Option<Expr>,
    event_time: bool,
    cx: RuleContext,
    rows: Vec<Row>,
    /// eKuiper's `triggerTime`: the previous firing (or the first event).
    trigger_time: Option<i64>,
    /// Next aligned firing of tumbling/hopping windows, and the aligned
    /// max-duration tick of processing-time session windows.
    next_end: Option<i64>,
    /// Processing-time session: when the inactivity timeout fires.
    session_timeout: Option<i64>,
    /// Sliding windows: trigger times waiting for the watermark (event time).
    triggers: VecDeque<i64>,
    /// Sliding windows with delay: firing times pending.
    delayed: VecDeque<i64>,
    count: u64,
    states: Option<StateWindows>,
    /// Event-time session: the last window ended at a max-duration tick.
    session_ticked: bool,
    /// Processing-time session: a timeout timer exists (eKuiper's
    /// `timeoutTicker != nil`).
    session_armed: bool,
}

impl WindowOp {
    /// A window operator.
    pub fn new(
        spec: WindowSpec,
        unit: TimeUnit,
        filter: Option<Expr>,
        trigger: Option<Expr>,
        state: Option<StateConditions>,
        event_time: bool,
        cx: RuleContext,
    ) -> WindowOp {
        let states = state.map(|s| StateWindows::new(s.partition, s.begin, s.emit));
        WindowOp {
            spec,
            unit,
            filter,
            trigger,
            event_time,
            cx,
            rows: Vec::new(),
            trigger_time: None,
            next_end: None,
            session_timeout: None,
            triggers: VecDeque::new(),
            delayed: VecDeque::new(),
            count: 0,
            states,
            session_ticked: false,
            session_armed: false,
        }
    }

    /// Window length as eKuiper's `Length + Delay`.
    fn length(&self) -> i64 {
        match self.spec {
            WindowSpec::Tumbling { size_ms } | WindowSpec::Hopping { size_ms, .. } => size_ms,
            WindowSpec::Sliding { size_ms, delay_ms } => size_ms + delay_ms,
            WindowSpec::Session { max_ms, .. } => max_ms,
            _ => 0,
        }
    }

    /// The raw interval that aligns the first firing, in units.
    fn raw_interval(&self) -> i64 {
        let ms = match self.spec {
            WindowSpec::Tumbling { size_ms } => size_ms,
            WindowSpec::Hopping { hop_ms, .. } => hop_ms,
            WindowSpec::Session { max_ms, .. } => max_ms,
            _ => 0,
        };
        ms / self.unit.millis()
    }

    /// Step between aligned firings.
    fn interval(&self) -> i64 {
        match self.spec {
            WindowSpec::Tumbling { size_ms } => size_ms,
            WindowSpec::Hopping { hop_ms, .. } => hop_ms,
            WindowSpec::Session { max_ms, .. } => max_ms,
            _ => 0,
        }
    }

    /// Emits the window ending at `right` and keeps what later windows need.
    fn scan(&mut self, right: i64, length: i64, out: &mut Output) {
        let overlap = matches!(self.spec, WindowSpec::Hopping { .. } | WindowSpec::Sliding { .. });
        let inclusive = matches!(self.spec, WindowSpec::Sliding { delay_ms: 0, .. });
        let left = right - length;
        let inside = |ts: i64| if inclusive { ts <= right } else { ts < right };
        let mut content = Vec::new();
        if overlap {
            self.rows.retain(|r| r.ts >= left);
            content.extend(self.rows.iter().filter(|r| inside(r.ts)).cloned());
        } else {
            let (take, keep): (Vec<Row>, Vec<Row>) =
                std::mem::take(&mut self.rows).into_iter().partition(|r| inside(r.ts));
            content = take;
            self.rows = keep;
        }
        let start = match self.spec {
            WindowSpec::Hopping { hop_ms, .. } => self.trigger_time.map(|t| t - hop_ms),
            WindowSpec::Sliding { .. } => Some(right - length),
            _ => self.trigger_time,
        };
        let start = start.filter(|s| *s > 0).unwrap_or(right - length);
        out.data(Batch::emission(content, WindowRange { start, end: right, trigger: right }));
        self.trigger_time = Some(right);
    }

    /// Applies `FILTER (WHERE ...)`: rows that fail or error are dropped.
    fn admit(&self, row: &Row, now: i64, out: &mut Output) -> bool {
        let Some(f) = &self.filter else { return true };
        match f.eval(row, &self.cx.eval(now, None)) {
            Ok(v) => v.is_true(),
            Err(e) => {
                out.error(e);
                false
            }
        }
    }

    /// Whether a row triggers a sliding window (`OVER (WHEN ...)`).
    fn triggers_sliding(&self, row: &Row, now: i64, out: &mut Output) -> bool {
        let Some(t) = &self.trigger else { return true };
        match t.eval(row, &self.cx.eval(now, None)) {
            Ok(v) => v.is_true(),
            Err(e) => {
                out.error(e);
                false
            }
        }
    }

    fn on_row(&mut self, row: Row, now: i64, out: &mut Output) {
        if self.trigger_time.is_none() && self.event_time {
            self.trigger_time = Some(row.ts);
        }
        match self.spec.clone() {
            WindowSpec::Count { size, hop } => self.count_row(row, size, hop, out),
            WindowSpec::State { .. } => {
                if let Some(states) = &mut self.states {
                    states.process(row, &self.cx, now, out);
                }
            }
            WindowSpec::Sliding { size_ms, delay_ms } => {
                let ts = row.ts;
                let fire = self.triggers_sliding(&row, now, out);
                self.rows.push(row);
                if self.event_time {
                    if fire {
                        self.triggers.push_back(ts);
                    }
                } else if fire {
                    if delay_ms > 0 {
                        self.delayed.push_back(ts + delay_ms);
                    } else {
                        self.scan(ts, size_ms, out);
                    }
                } else {
                    let length = size_ms + delay_ms;
                    self.rows.retain(|r| r.ts + length > ts);
                }
            }
            WindowSpec::Session { timeout_ms, .. } if !self.event_time => {
                // eKuiper's timeout timer, once created, is only dropped
                // when it fires on a non-empty buffer; a new session starts
                // (and sets the window start) only then.
                if !self.session_armed {
                    self.trigger_time = Some(row.ts);
                    self.session_armed = true;
                }
                self.session_timeout = Some(now.max(row.ts) + timeout_ms);
                self.rows.push(row);
            }
            _ => self.rows.push(row),
        }
    }

    fn on_proc_time(&mut self, now: i64, out: &mut Output) {
        if self.next_end.is_none()
            && matches!(
                self.spec,
                WindowSpec::Tumbling { .. } | WindowSpec::Hopping { .. } | WindowSpec::Session { .. }
            )
        {
            self.next_end = Some(aligned_end(now, self.raw_interval(), self.unit));
            // eKuiper starts the first processing-time window at rule start.
            if !matches!(self.spec, WindowSpec::Session { .. }) {
                self.trigger_time = Some(now);
            }
        }
        // Fire due timers in time order.
        loop {
            let candidates = [self.next_end, self.session_timeout, self.delayed.front().copied()];
            let Some(t) = candidates.into_iter().flatten().filter(|t| *t <= now).min() else { break };
            if self.delayed.front() == Some(&t) {
                self.delayed.pop_front();
                self.scan(t, self.length(), out);
            } else if self.session_timeout == Some(t) {
                self.session_timeout = None;
                if !self.rows.is_empty() {
                    self.scan(t, self.length(), out);
                    self.rows.clear();
                    self.session_armed = false;
                }
            } else {
                self.next_end = Some(t + self.interval());
                match self.spec {
                    WindowSpec::Session { max_ms, .. } => {
                        if self.rows.first().is_some_and(|r| t - r.ts >= max_ms) {
                            self.scan(t, self.length(), out);
                        }
                    }
                    _ => self.scan(t, self.length(), out),
                }
            }
        }
    }

    fn on_event_time(&mut self, wm: i64, out: &mut Output) {
        match self.spec.clone() {
            WindowSpec::Tumbling { .. } | WindowSpec::Hopping { .. } => {
                if self.next_end.is_none() {
                    let Some(first) = self.rows.iter().map(|r| r.ts).filter(|t| *t <= wm).min() else { return };
                    self.next_end = Some(aligned_end(first, self.raw_interval(), self.unit));
                }
                while let Some(end) = self.next_end.filter(|e| *e <= wm) {
                    self.scan(end, self.length(), out);
                    self.next_end = Some(end + self.interval());
                }
            }
            WindowSpec::Sliding { size_ms, delay_ms } => {
                while let Some(d) = self.delayed.front().copied().filter(|d| *d <= wm) {
                    self.delayed.pop_front();
                    self.scan(d, size_ms + delay_ms, out);
                }
                while let Some(t) = self.triggers.front().copied().filter(|t| *t <= wm) {
                    self.triggers.pop_front();
                    if delay_ms > 0 {
                        self.delayed.push_back(t + delay_ms);
                    } else {
                        self.scan(t, size_ms, out);
                    }
                }
            }
            WindowSpec::Session { max_ms, timeout_ms } => self.session_event_time(wm, max_ms, timeout_ms, out),
            WindowSpec::Count { .. } | WindowSpec::State { .. } => {}
        }
    }
}

/// The mutable part of a window, as checkpointed.
type WindowState = (
    Vec<Row>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    VecDeque<i64>,
    VecDeque<i64>,
    u64,
    (bool, bool),
    Option<Vec<(String, Vec<Row>)>>,
);

impl Operator for WindowOp {
    fn snapshot(&self) -> StateResult<Option<Vec<u8>>> {
        let state: WindowState = (
            self.rows.clone(),
            self.trigger_time,
            self.next_end,
            self.session_timeout,
            self.triggers.clone(),
            self.delayed.clone(),
            self.count,
            (self.session_ticked, self.session_armed),
            self.states.as_ref().map(StateWindows::open_windows),
        );
        codec::encode(&state).map(Some)
    }

    fn restore(&mut self, bytes: &[u8]) -> StateResult<()> {
        let s: WindowState = codec::decode(bytes, "window")?;
        (self.rows, self.trigger_time, self.next_end, self.session_timeout) = (s.0, s.1, s.2, s.3);
        (self.triggers, self.delayed, self.count, (self.session_ticked, self.session_armed)) = (s.4, s.5, s.6, s.7);
        if let (Some(states), Some(open)) = (&mut self.states, s.8) {
            states.set_open_windows(open);
        }
        Ok(())
    }

    fn process(&mut self, _input: usize, batch: Batch, now: i64, out: &mut Output) {
        for row in batch.rows {
            if self.admit(&row, now, out) {
                self.on_row(row, now, out);
            }
        }
    }

    fn on_tick(&mut self, now: i64, out: &mut Output) {
        if !self.event_time {
            self.on_proc_time(now, out);
        }
    }

    fn on_watermark(&mut self, wm: i64, out: &mut Output) {
        if self.event_time {
            self.on_event_time(wm, out);
        }
    }

    fn next_timer(&self) -> Option<i64> {
        if self.event_time {
            return None;
        }
        [self.next_end, self.session_timeout, self.delayed.front().copied()].into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests;
