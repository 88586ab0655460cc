//! `weir bench`: end-to-end throughput of a rule on generated NDJSON.
//!
//! The input is a deterministic stream of sensor readings
//! (`{"deviceId":"d0".."d99","temperature":..,"humidity":..,"ts":..}`, event
//! time +1 ms per event). It is written once to a file and streamed from it
//! in chunks (the default), or generated on the fly in memory. Either way no
//! broker is measured: payloads go straight into the rule's graph, and a
//! counting sink at the end sees the real output rows.
//!
//! Figures: events per wall second, events per CPU second (user + system of
//! the whole process over the run, from `/proc/self/stat`) and peak RSS
//! (`VmHWM` from `/proc/self/status`).
//!
//! `weir bench decode` measures the JSON decoder alone: one payload per line
//! (as the graph gets them now) against [`Decoder::decode_ndjson`] on whole
//! chunks.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{BufWriter, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use weir_planner::{parse_statement, plan, Catalog, PhysicalPlan, RuleOptions, Statement};
use weir_runtime::clock::{Clock, SystemClock};
use weir_runtime::connector::{BoxFuture, Sink, SinkError};
use weir_runtime::decode::Decoder;
use weir_runtime::row::{Payload, PayloadData, Row};
use weir_runtime::rule::{RunningRule, Source, SourceSender};
use weir_runtime::{Registry, Value};

/// The rules measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Workload {
    /// Tumbling-window GROUP BY with count/avg/max, event time.
    W1,
    /// Filter and arithmetic projection, no window.
    W2,
    /// The JSON decoder alone (no graph): per-line payloads vs NDJSON chunks.
    Decode,
}

/// Where the events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Input {
    /// Written once to a file, then streamed from it in chunks.
    File,
    /// Generated while running (the generator's CPU time is included).
    Memory,
}

/// `weir bench` arguments.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub(crate) workload: Workload,
    /// Number of events.
    #[arg(long, default_value_t = 10_000_000)]
    pub(crate) events: u64,
    /// Declare the stream schemaless (`CREATE STREAM s ()`).
    #[arg(long)]
    pub(crate) schemaless: bool,
    /// Where events come from.
    #[arg(long, value_enum, default_value_t = Input::File)]
    pub(crate) input: Input,
    /// Data file to use; generated if it does not exist. Default: a file in
    /// a temporary directory, removed afterwards.
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// Payloads per push into the graph.
    #[arg(long, default_value_t = 1024)]
    pub(crate) batch: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Rule option `qos`: 1 or 2 checkpoints the rule into RocksDB (in a
    /// temporary directory). The input is rewindable, like a file source:
    /// checkpoints record its position.
    #[arg(long, default_value_t = 0)]
    pub(crate) qos: u8,
    /// With `qos` 1 or 2: treat the input as a source that cannot rewind
    /// (MQTT, HTTP push), so every event goes through the durable ingest
    /// log first.
    #[arg(long)]
    pub(crate) ingest_log: bool,
    /// Rule option `checkpointInterval`, ms.
    #[arg(long, default_value_t = 1000)]
    pub(crate) checkpoint_interval: i64,
}

const W1_SQL: &str = "SELECT deviceId, count(*) AS c, avg(temperature) AS t, max(humidity) AS h \
                      FROM s GROUP BY deviceId, TUMBLINGWINDOW(ss, 10)";
const W2_SQL: &str = "SELECT deviceId, temperature * 1.8 + 32 AS f FROM s WHERE humidity > 50";
const SCHEMA: &str = "(deviceId STRING, temperature FLOAT, humidity FLOAT, ts BIGINT)";
const BASE_TS: i64 = 1_700_000_000_000;
const CHUNK: usize = 1 << 20;

/// `weir bench`: runs and prints the figures.
pub(crate) fn main(args: &BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    match args.workload {
        Workload::Decode => println!("{}", run_decode(args)?),
        _ => println!("{}", run(args)?),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// What a run measured.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// Workload and options, for the printout.
    pub(crate) label: String,
    /// Events fed.
    pub(crate) events: u64,
    /// Emissions the sink received.
    pub(crate) emissions: u64,
    /// Rows the sink received.
    pub(crate) rows: u64,
    /// Sum of the `c` column (W1: events counted in fired windows).
    pub(crate) c_sum: i64,
    /// Wall time of the run.
    pub(crate) wall: Duration,
    /// User + system CPU time of the process over the run.
    pub(crate) cpu: Duration,
    /// Peak resident set, KiB (whole process lifetime).
    pub(crate) peak_rss_kib: u64,
}

impl Report {
    /// Events per wall-clock second.
    pub(crate) fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Events per CPU second.
    pub(crate) fn events_per_cpu_sec(&self) -> f64 {
        self.events as f64 / self.cpu.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.label)?;
        writeln!(f, "  events            {}", self.events)?;
        writeln!(f, "  sink              {} emissions, {} rows, sum(c) {}", self.emissions, self.rows, self.c_sum)?;
        writeln!(f, "  wall              {:.3} s", self.wall.as_secs_f64())?;
        writeln!(f, "  cpu (user+sys)    {:.3} s", self.cpu.as_secs_f64())?;
        writeln!(f, "  events/s          {:.0}", self.events_per_sec())?;
        writeln!(f, "  events/cpu-s      {:.0}", self.events_per_cpu_sec())?;
        write!(f, "  peak RSS (VmHWM)  {:.1} MiB", self.peak_rss_kib as f64 / 1024.0)
    }
}

/// The deterministic event generator (splitmix64).
pub(crate) struct Generator {
    state: u64,
    next: u64,
}

impl Generator {
    pub(crate) fn new(seed: u64) -> Generator {
        Generator { state: seed, next: 0 }
    }

    fn rand(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Appends the next event and a newline to `buf`.
    pub(crate) fn line(&mut self, buf: &mut Vec<u8>) {
        let r = self.rand();
        let device = r % 100;
        let temp = (r >> 8) % 4000; // 10.00 .. 49.99
        let hum = (r >> 24) % 1000; // 0.0 .. 99.9
        let ts = BASE_TS + self.next as i64;
        self.next += 1;
        let _ = writeln!(
            buf,
            r#"{{"deviceId":"d{device}","temperature":{}.{:02},"humidity":{}.{},"ts":{ts}}}"#,
            10 + temp / 100,
            temp % 100,
            hum / 10,
            hum % 10
        );
    }
}

/// Writes `n` events to `path`.
fn generate_file(path: &Path, n: u64, seed: u64) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(CHUNK, file);
    let mut g = Generator::new(seed);
    let mut buf = Vec::with_capacity(CHUNK + 256);
    for _ in 0..n {
        g.line(&mut buf);
        if buf.len() >= CHUNK {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Yields chunks of whole NDJSON lines, from a file or the generator.
enum Feed {
    File { file: File, carry: Vec<u8> },
    Memory { gen: Generator, left: u64 },
}

impl Feed {
    /// Fills `buf` (cleared first) with whole lines; false at the end.
    fn next_chunk(&mut self, buf: &mut Vec<u8>) -> anyhow::Result<bool> {
        buf.clear();
        match self {
            Feed::Memory { gen, left } => {
                while *left > 0 && buf.len() < CHUNK {
                    gen.line(buf);
                    *left -= 1;
                }
            }
            Feed::File { file, carry } => {
                buf.append(carry);
                let start = buf.len();
                buf.resize(start + CHUNK, 0);
                let mut filled = start;
                while filled < buf.len() {
                    match file.read(&mut buf[filled..])? {
                        0 => break,
                        k => filled += k,
                    }
                }
                buf.truncate(filled);
                if filled == start + CHUNK {
                    // Not at the end: keep the partial last line for later.
                    if let Some(nl) = buf.iter().rposition(|b| *b == b'\n') {
                        carry.extend_from_slice(&buf[nl + 1..]);
                        buf.truncate(nl + 1);
                    }
                }
            }
        }
        Ok(!buf.is_empty())
    }
}

fn lines(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty())
}

/// Counts what reaches the sink.
#[derive(Clone, Default)]
struct CountingSink(Arc<Counters>);

#[derive(Default)]
struct Counters {
    emissions: AtomicU64,
    rows: AtomicU64,
    c_sum: AtomicU64,
}

impl Sink for CountingSink {
    fn emit<'a>(&'a mut self, rows: &'a [Value]) -> BoxFuture<'a, Result<(), SinkError>> {
        self.0.emissions.fetch_add(1, Ordering::Relaxed);
        self.0.rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
        let mut c = 0;
        for r in rows {
            if let Value::Map(m) = r {
                c += m.get("c").and_then(Value::as_i64).unwrap_or(0);
            }
        }
        self.0.c_sum.fetch_add(c as u64, Ordering::Relaxed);
        Box::pin(std::future::ready(Ok(())))
    }
}

fn build_plan(workload: Workload, schemaless: bool, qos: u8, interval: i64) -> anyhow::Result<PhysicalPlan> {
    let schema = if schemaless { "()" } else { SCHEMA };
    let ddl = format!(r#"CREATE STREAM s {schema} WITH (DATASOURCE="s", TIMESTAMP="ts")"#);
    let Statement::Create(def) = parse_statement(&ddl)? else { bail!("not a CREATE statement: {ddl}") };
    let mut catalog = Catalog::new();
    catalog.insert(*def);
    let (sql, mut options) = match workload {
        Workload::W1 => (W1_SQL, serde_json::json!({"isEventTime": true})),
        _ => (W2_SQL, serde_json::json!({})),
    };
    options["qos"] = qos.into();
    options["checkpointInterval"] = interval.into();
    let options = RuleOptions::from_json(&options)?;
    Ok(plan("bench", sql, &catalog, &options, Registry::builtins())?)
}

/// A data file removed when dropped.
struct TempData(PathBuf);

impl Drop for TempData {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Prepares the feed: generates the data file unless it exists.
fn open_feed(args: &BenchArgs) -> anyhow::Result<(Feed, Option<TempData>)> {
    if args.input == Input::Memory {
        return Ok((Feed::Memory { gen: Generator::new(args.seed), left: args.events }, None));
    }
    let (path, temp) = match &args.data {
        Some(p) => (p.clone(), None),
        None => {
            let p = std::env::temp_dir().join(format!("weir-bench-{}-{}.ndjson", std::process::id(), args.seed));
            (p.clone(), Some(TempData(p)))
        }
    };
    if !path.exists() {
        let t = Instant::now();
        generate_file(&path, args.events, args.seed)?;
        let size = std::fs::metadata(&path)?.len();
        eprintln!(
            "generated {} events ({:.0} MiB) in {:.1} s: {}",
            args.events,
            size as f64 / (1 << 20) as f64,
            t.elapsed().as_secs_f64(),
            path.display()
        );
    }
    let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok((Feed::File { file, carry: Vec::new() }, temp))
}

/// A file-source-like loop: reads chunks of lines and sends one payload
/// per line, `batch` payloads at a time.
struct BenchSource {
    feed: Feed,
    batch: usize,
    limit: u64,
    fed: Arc<AtomicU64>,
    error: Arc<std::sync::Mutex<Option<String>>>,
    /// Checkpointed by position (false: through the ingest log).
    rewind: bool,
}

impl Source for BenchSource {
    fn run(self: Box<Self>, out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let BenchSource { mut feed, batch, limit, fed, error, rewind: _ } = *self;
            let mut chunk = Vec::with_capacity(CHUNK + 4096);
            // Rewindable: a restored rule resumes after the events it had.
            let skip = out.resume_position();
            let mut n = 0u64;
            let mut payloads = Vec::with_capacity(batch);
            'feed: loop {
                match feed.next_chunk(&mut chunk) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        *error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                        break;
                    }
                }
                let now = out.now_ms();
                for line in lines(&chunk) {
                    if n == limit {
                        break 'feed;
                    }
                    n += 1;
                    if n <= skip {
                        continue;
                    }
                    payloads.push(Payload { data: PayloadData::Bytes(line.to_vec()), ts: now, meta: None });
                    if payloads.len() == batch
                        && !out.send_at(std::mem::replace(&mut payloads, Vec::with_capacity(batch)), n).await
                    {
                        break 'feed;
                    }
                }
            }
            if !payloads.is_empty() {
                out.send_at(payloads, n).await;
            }
            fed.store(n, Ordering::Relaxed);
        })
    }

    fn rewindable(&self) -> bool {
        self.rewind
    }
}

/// Runs W1 or W2 and returns the figures.
pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    let plan = build_plan(args.workload, args.schemaless, args.qos, args.checkpoint_interval)?;
    let state_dir = tempfile::tempdir()?;
    let state: Option<Arc<dyn weir_runtime::state::StateBackend>> = match args.qos {
        0 => None,
        _ => Some(Arc::new(weir_runtime::state::RocksBackend::open(state_dir.path())?)),
    };
    let (feed, _data) = open_feed(args)?;
    let sink = CountingSink::default();
    let counters = sink.0.clone();
    let batch = args.batch.max(1);
    let fed = Arc::new(AtomicU64::new(0));
    let error = Arc::new(std::sync::Mutex::new(None));
    let source = BenchSource {
        feed,
        batch,
        limit: args.events,
        fed: fed.clone(),
        error: error.clone(),
        rewind: !args.ingest_log,
    };
    let fed_events = fed.clone();

    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let system = actix::System::new();
    system.block_on(async move {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut rule = RunningRule::start_with(
            &plan,
            Registry::builtins(),
            clock,
            vec![Box::new(source)],
            vec![("counting".to_string(), Box::new(sink))],
            state,
            Vec::new(),
        )?;
        rule.wait_sources().await;
        // Through the ingest log the rule reads behind the source: wait
        // until the decoder has taken every event.
        let want = fed_events.load(Ordering::Relaxed);
        let decoded = |r: &RunningRule| {
            r.metrics().iter().filter(|m| m.name.contains("decoder")).map(|m| m.records_in()).sum::<u64>()
        };
        while decoded(&rule) < want {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        rule.stop().await;
        anyhow::Ok(())
    })?;
    let wall = t0.elapsed();
    let cpu = cpu_time().saturating_sub(cpu0);
    if let Some(e) = error.lock().unwrap_or_else(|e| e.into_inner()).take() {
        bail!("reading the input: {e}");
    }
    let label = format!(
        "{:?}{} input={:?} batch={} qos={}{}",
        args.workload,
        if args.schemaless { " schemaless" } else { " schema" },
        args.input,
        batch,
        args.qos,
        if args.qos > 0 && args.ingest_log { " ingest-log" } else { "" }
    );
    Ok(Report {
        label,
        events: fed.load(Ordering::Relaxed),
        emissions: counters.emissions.load(Ordering::Relaxed),
        rows: counters.rows.load(Ordering::Relaxed),
        c_sum: counters.c_sum.load(Ordering::Relaxed) as i64,
        wall,
        cpu,
        peak_rss_kib: peak_rss_kib(),
    })
}

/// Decoder alone: the same input, decoded one payload per line (a fresh
/// `Vec<u8>` per line, as a source builds them) and as NDJSON chunks.
pub(crate) fn run_decode(args: &BenchArgs) -> anyhow::Result<String> {
    let plan = build_plan(Workload::W1, args.schemaless, 0, 1000)?;
    let source = &plan.sources[0];
    let decoder = Decoder::new(source, 0, plan.width as usize, Some("ts"));
    let mut out = String::new();
    // Both modes read the same file.
    let mut args = args.clone();
    let _temp = match (&args.data, args.input) {
        (None, Input::File) => {
            let p = std::env::temp_dir().join(format!("weir-bench-{}-{}.ndjson", std::process::id(), args.seed));
            args.data = Some(p.clone());
            Some(TempData(p))
        }
        _ => None,
    };
    for mode in ["per-line", "ndjson-chunk"] {
        let (mut feed, _) = open_feed(&args)?;
        let mut chunk = Vec::with_capacity(CHUNK + 4096);
        let mut rows: Vec<Row> = Vec::with_capacity(CHUNK / 64);
        let (mut n, mut errors, mut ts_sum) = (0u64, 0u64, 0i64);
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        while feed.next_chunk(&mut chunk)? {
            rows.clear();
            if mode == "per-line" {
                for line in lines(&chunk) {
                    let p = line.to_vec();
                    if decoder.decode_json(&p, 0, &mut rows).is_err() {
                        errors += 1;
                    }
                }
            } else {
                errors += decoder.decode_ndjson(&chunk, 0, &mut rows).len() as u64;
            }
            n += rows.len() as u64;
            ts_sum = ts_sum.wrapping_add(rows.iter().map(|r| r.ts).sum::<i64>());
        }
        let wall = t0.elapsed();
        let cpu = cpu_time().saturating_sub(cpu0);
        out.push_str(&format!(
            "decode {mode}{}: {n} rows, {errors} errors, ts sum {ts_sum}, {:.3} s wall, {:.3} s cpu, {:.0} rows/cpu-s\n",
            if args.schemaless { " schemaless" } else { " schema" },
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            n as f64 / cpu.as_secs_f64().max(1e-9),
        ));
    }
    out.push_str(&format!("peak RSS (VmHWM) {:.1} MiB", peak_rss_kib() as f64 / 1024.0));
    Ok(out)
}

/// User + system CPU time of this process (all threads), from
/// `/proc/self/stat` (fields 14 and 15, in clock ticks of 1/100 s).
pub(crate) fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return Duration::ZERO };
    // The command name (field 2) may hold spaces: count fields after ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // `rest` starts at field 3, so utime (14) and stime (15) are 11 and 12.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Peak resident set size (`VmHWM`), KiB.
pub(crate) fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
