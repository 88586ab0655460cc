//! What the demo prints: one compact line per rule result (as the output
//! topics and the stand-in Neuron receive them) and a progress line with
//! each rule's events in and out, read from the rules' status metrics.
//!
//! The progress line reads `line N │ twin IN→OUT │ alarm ... │ control ...`:
//! readings the line published, then per rule the records its source read
//! and the records its sinks sent.
//!
//! On a terminal the progress line is redrawn in place; otherwise (a pipe,
//! a log) it is printed as a normal line every few seconds.

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;

use crate::node::Node;
use crate::rules::Status;

/// Something to show.
#[derive(Debug)]
pub(super) enum Event {
    /// A row the device-twin rule published.
    Twin(Value),
    /// A row the alarm rule published.
    Alarm(Value),
    /// A write request the stand-in Neuron received.
    Write { path: String, node: String, group: String, tag: String, value: Value, previous: Option<f64> },
}

/// One of the demo's rules: id, and the label and colour it is shown with.
pub(super) struct RuleView {
    pub(super) id: &'static str,
    colour: &'static str,
}

/// The four rules, in display order.
pub(super) const RULES: [RuleView; 4] = [
    RuleView { id: super::TWIN, colour: "36" },
    RuleView { id: super::ALARM, colour: "1;31" },
    RuleView { id: super::CONTROL, colour: "33" },
    RuleView { id: super::ADVISOR, colour: "35" },
];

/// How many results of each rule the demo saw.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Seen {
    pub(super) twin: u64,
    pub(super) alarm: u64,
    pub(super) writes: u64,
    pub(super) advice: u64,
}

/// The printer: owns stdout while the demo runs.
pub(super) struct Display {
    node: Arc<Node>,
    start: Instant,
    published: Arc<AtomicU64>,
    quiet: bool,
    tty: bool,
    seen: Seen,
    /// A progress line is on screen (terminal only).
    drawn: bool,
    /// When the last progress line was printed with nothing after it
    /// (pipe only): the final one is then left out if it would repeat it.
    last_progress: Option<Instant>,
}

impl Display {
    pub(super) fn new(node: Arc<Node>, start: Instant, published: Arc<AtomicU64>, quiet: bool) -> Display {
        let tty = std::io::stdout().is_terminal();
        Display { node, start, published, quiet, tty, seen: Seen::default(), drawn: false, last_progress: None }
    }

    /// Prints events and progress until `stop` fires, then the final
    /// progress line; returns the counts.
    pub(super) async fn run(mut self, mut events: UnboundedReceiver<Event>, mut stop: oneshot::Receiver<()>) -> Seen {
        let every = if self.tty { Duration::from_millis(250) } else { Duration::from_secs(5) };
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                e = events.recv() => match e {
                    Some(e) => self.event(e),
                    None => break,
                },
                _ = ticker.tick() => self.progress(false),
                _ = &mut stop => break,
            }
        }
        // What arrived before the stop.
        while let Ok(e) = events.try_recv() {
            self.event(e);
        }
        self.progress(true);
        self.seen
    }

    fn elapsed(&self) -> String {
        format!("{:>6.1}s", self.start.elapsed().as_secs_f64())
    }

    /// The rule's id, coloured on a terminal, padded to `width`.
    fn label(&self, rule: usize, width: usize) -> String {
        let r = &RULES[rule];
        let pad = " ".repeat(width.saturating_sub(r.id.len()));
        if self.tty {
            format!("\x1b[{}m{}\x1b[0m{pad}", r.colour, r.id)
        } else {
            format!("{}{pad}", r.id)
        }
    }

    fn event(&mut self, e: Event) {
        let line = match e {
            Event::Twin(row) => {
                self.seen.twin += 1;
                format!(
                    "{}  {}  {:<10} {:>7} °C  {:>6} bar  {:>6} m³/h   avg of {} readings",
                    self.elapsed(),
                    self.label(0, 8),
                    text(&row["furnace"]),
                    num(&row["t"], 1),
                    num(&row["p"], 3),
                    num(&row["g"], 2),
                    text(&row["n"]),
                )
            }
            Event::Alarm(row) => {
                self.seen.alarm += 1;
                let what = match row["alarm"].as_str().unwrap_or_default() {
                    "overheat" => format!("OVERHEAT      {} °C (was {} °C)", num(&row["t"], 1), num(&row["prev"], 1)),
                    "sensor fault" => format!("SENSOR FAULT  temperature reads {}", num(&row["t"], 0)),
                    "cleared" => format!("cleared       {} °C", num(&row["t"], 1)),
                    other => format!("{other} {}", row),
                };
                format!("{}  {}  {:<10} {what}", self.elapsed(), self.label(1, 8), text(&row["furnace"]))
            }
            Event::Write { path, node, group, tag, value, previous } => {
                let rule = if tag == super::neuron::ADVICE_TAG {
                    self.seen.advice += 1;
                    3
                } else {
                    self.seen.writes += 1;
                    2
                };
                let from = previous.map(|p| format!("{p:.2} → ")).unwrap_or_default();
                format!(
                    "{}  {}  {node:<10} {tag} {from}{} m³/h   (Neuron got POST {path}, group {group})",
                    self.elapsed(),
                    self.label(rule, 8),
                    num(&value, 2),
                )
            }
        };
        if self.quiet {
            return;
        }
        let mut out = std::io::stdout().lock();
        if self.drawn {
            let _ = write!(out, "\r\x1b[2K");
            self.drawn = false;
        }
        let _ = writeln!(out, "{line}");
        drop(out);
        self.last_progress = None;
        if self.tty {
            self.progress(false);
        }
    }

    /// Events in and out of every rule, from its status metrics.
    fn progress(&mut self, last: bool) {
        if last && self.last_progress.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        let mut parts = vec![format!("line {}", compact(self.published.load(Ordering::Relaxed)))];
        for (i, r) in RULES.iter().enumerate() {
            let label = self.label(i, 0);
            parts.push(match self.node.rule_state(r.id) {
                Ok(st) if st.status == Status::Running => {
                    let (rin, rout, errors) = rule_counts(&st);
                    let errors = if errors > 0 { format!(" ({errors} errors)") } else { String::new() };
                    format!("{label} {}→{}{errors}", compact(rin), compact(rout))
                }
                Ok(st) => format!("{label} {}", st.status.as_str()),
                Err(_) => format!("{label} gone"),
            });
        }
        let mut line = format!("{}  {}", self.elapsed(), parts.join(" │ "));
        let mut out = std::io::stdout().lock();
        if self.tty {
            if !last {
                line.push_str(" │ Ctrl-C stops");
            }
            let _ = write!(out, "\r\x1b[2K{line}");
            if last {
                let _ = writeln!(out);
            }
            self.drawn = !last;
        } else {
            let _ = writeln!(out, "{line}");
            self.last_progress = Some(Instant::now());
        }
        let _ = out.flush();
    }
}

/// `N in / M out` of a running rule, or its status.
pub(super) fn summary(st: &crate::rules::RuleState) -> String {
    if st.status != Status::Running {
        return st.status.as_str().to_string();
    }
    let (rin, rout, errors) = rule_counts(st);
    let errors = if errors > 0 { format!(", {errors} errors") } else { String::new() };
    format!("{rin} in / {rout} out{errors}")
}

/// Records into the rule (what its sources read), records out (what its
/// sinks sent), and exceptions over every node.
pub(super) fn rule_counts(st: &crate::rules::RuleState) -> (u64, u64, u64) {
    let (mut rin, mut rout, mut errors) = (0, 0, 0);
    for n in crate::rules::node_metrics(st) {
        let get = |m: &str| n.values.iter().find(|(k, _)| k == m).and_then(|(_, v)| v.as_u64()).unwrap_or(0);
        match n.kind {
            "source" => rin += get("records_in_total"),
            "sink" => rout += get("records_out_total"),
            _ => {}
        }
        errors += get("exceptions_total");
    }
    (rin, rout, errors)
}

/// `950`, `12.3k`, `4.56M`: keeps the progress line short.
fn compact(n: u64) -> String {
    match n {
        0..10_000 => n.to_string(),
        10_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.2}M", n as f64 / 1e6),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}

fn num(v: &Value, places: usize) -> String {
    match v.as_f64() {
        Some(f) => format!("{f:.places$}"),
        None => text(v),
    }
}
