//! The `file` source: reads rows from a file, once or every `interval`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use weir_planner::StreamDef;
use weir_runtime::row::{Payload, PayloadData};
use weir_runtime::rule::{Source, SourceSender};
use weir_runtime::{Map, Value};

use super::FileType;
use crate::format::delimited_decode;
use crate::outlet::Outlet;
use crate::props::invalid;
use crate::{Environment, Result};

/// Rows handed to the rule in one `send` at most.
const MAX_BATCH: usize = 1024;

/// What to do with a file once read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterRead {
    Keep,
    Delete,
    Move(PathBuf),
}

/// A stream or table reading a file.
#[derive(Debug)]
pub(crate) struct FileSource {
    target: PathBuf,
    file_type: FileType,
    has_header: bool,
    delimiter: String,
    columns: Vec<String>,
    ignore_start: usize,
    ignore_end: usize,
    interval_ms: u64,
    send_interval_ms: u64,
    after_read: AfterRead,
}

impl FileSource {
    /// # Errors
    /// No `DATASOURCE`, an unknown `fileType`, properties of the wrong type.
    pub(crate) fn new(def: &StreamDef, env: &Environment) -> Result<FileSource> {
        let p = env.source_props("file", def.options.conf_key.as_deref(), def.options.extra.as_deref())?;
        let ds = def.options.datasource.as_deref().unwrap_or("").trim();
        if ds.is_empty() {
            return Err(invalid("DATASOURCE", "the file source needs a file name".into()));
        }
        let dir = match p.str("path")? {
            Some(d) if !d.is_empty() => {
                let d = PathBuf::from(d);
                if d.is_absolute() {
                    d
                } else {
                    env.data_dir.join(d)
                }
            }
            _ => env.data_dir.clone(),
        };
        let count = |name: &str| -> Result<usize> {
            match p.int(name)? {
                Some(n) if n < 0 => Err(invalid(name, "must not be negative".into())),
                n => Ok(n.unwrap_or(0) as usize),
            }
        };
        let after_read = match p.int("actionAfterRead")?.unwrap_or(0) {
            0 => AfterRead::Keep,
            1 => AfterRead::Delete,
            2 => AfterRead::Move(PathBuf::from(p.required_str("moveTo")?)),
            n => return Err(invalid("actionAfterRead", format!("must be 0, 1 or 2, got {n}"))),
        };
        let delimiter =
            p.str("delimiter")?.or(def.options.delimiter.as_deref()).filter(|d| !d.is_empty()).unwrap_or(",");
        Ok(FileSource {
            target: dir.join(ds.trim_start_matches('/')),
            file_type: FileType::parse(p.str("fileType")?, FileType::Json)?,
            has_header: p.bool("hasHeader")?.unwrap_or(false),
            delimiter: delimiter.to_string(),
            columns: p.str_list("columns")?.unwrap_or_default(),
            ignore_start: count("ignoreStartLines")?,
            ignore_end: count("ignoreEndLines")?,
            interval_ms: p.duration_ms("interval")?.unwrap_or(0),
            send_interval_ms: p.duration_ms("sendInterval")?.unwrap_or(0),
            after_read,
        })
    }

    /// The files to read, in name order.
    fn files(&self) -> std::io::Result<Vec<PathBuf>> {
        if self.target.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&self.target)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            Ok(files)
        } else {
            Ok(vec![self.target.clone()])
        }
    }

    /// Parses file content into rows.
    pub(crate) fn parse(&self, text: &str) -> std::result::Result<Vec<PayloadData>, String> {
        match self.file_type {
            FileType::Json => {
                let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
                let items = match v {
                    serde_json::Value::Array(a) => a,
                    o @ serde_json::Value::Object(_) => vec![o],
                    _ => return Err("a json file must hold an array of objects".into()),
                };
                items
                    .into_iter()
                    .map(|o| match Value::from_json(o, false) {
                        Value::Map(m) => Ok(PayloadData::Object(Map::clone(&m))),
                        other => Err(format!("expected an object, got {}", other.to_json())),
                    })
                    .collect()
            }
            FileType::Lines => Ok(self
                .lines(text)
                .into_iter()
                .filter(|l| !l.trim().is_empty())
                .map(|l| PayloadData::Bytes(l.as_bytes().to_vec()))
                .collect()),
            FileType::Csv => {
                let mut lines = self.lines(text).into_iter().filter(|l| !l.trim().is_empty());
                let mut columns = self.columns.clone();
                if self.has_header {
                    if let Some(h) = lines.next() {
                        columns = h.split(self.delimiter.as_str()).map(|c| c.trim().to_string()).collect();
                    }
                }
                Ok(lines.map(|l| PayloadData::Object(delimited_decode(l, &self.delimiter, &columns))).collect())
            }
        }
    }

    fn lines<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let lines: Vec<&str> = text.lines().collect();
        let end = lines.len().saturating_sub(self.ignore_end);
        lines.get(self.ignore_start.min(end)..end).unwrap_or_default().to_vec()
    }

    /// Reads every file once; the first `skip` rows (counted over all
    /// files) were sent before a restore and are skipped.
    async fn read_all(&self, out: &mut impl Outlet, skip: u64) -> bool {
        let files = match self.files() {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("file source {}: {e}", self.target.display());
                return true;
            }
        };
        let mut position = 0u64;
        for path in files {
            let rows = match std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|t| self.parse(&t)) {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!("file source {}: {e}", path.display());
                    continue;
                }
            };
            let seen = position + rows.len() as u64;
            let rows: Vec<PayloadData> = rows.into_iter().skip(skip.saturating_sub(position) as usize).collect();
            position = seen - rows.len() as u64;
            if !self.send(rows, out, &mut position).await {
                return false;
            }
            self.after_read(&path);
        }
        true
    }

    /// Sends `rows`, advancing `position` (rows sent over all files).
    async fn send(&self, rows: Vec<PayloadData>, out: &mut impl Outlet, position: &mut u64) -> bool {
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let n = if self.send_interval_ms > 0 { 1 } else { MAX_BATCH };
            let ts = out.now_ms();
            let batch: Vec<Payload> = rows.by_ref().take(n).map(|data| Payload { data, ts, meta: None }).collect();
            *position += batch.len() as u64;
            if !out.send_at(batch, *position).await {
                return false;
            }
            if self.send_interval_ms > 0 && rows.peek().is_some() && !pause(out, self.send_interval_ms).await {
                return false;
            }
        }
        true
    }

    fn after_read(&self, path: &Path) {
        let r = match &self.after_read {
            AfterRead::Keep => Ok(()),
            AfterRead::Delete => std::fs::remove_file(path),
            AfterRead::Move(dir) => std::fs::create_dir_all(dir)
                .and_then(|_| std::fs::rename(path, dir.join(path.file_name().unwrap_or_default()))),
        };
        if let Err(e) = r {
            tracing::warn!("file source: action after reading {}: {e}", path.display());
        }
    }

    /// Whether a restored rule can have this source re-read from a row
    /// position: only files that stay where they are, read once.
    fn can_rewind(&self) -> bool {
        self.after_read == AfterRead::Keep && self.interval_ms == 0
    }

    /// Reads, then every `interval` again, until `out` stops.
    pub(crate) async fn pump(self, mut out: impl Outlet) {
        let skip = if self.can_rewind() { out.resume_position() } else { 0 };
        loop {
            if !self.read_all(&mut out, skip).await || self.interval_ms == 0 {
                return;
            }
            if !pause(&mut out, self.interval_ms).await {
                return;
            }
        }
    }
}

/// Waits `ms` unless the rule stops first (then false).
async fn pause(out: &mut impl Outlet, ms: u64) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(ms)) => true,
        _ = out.stopped() => false,
    }
}

impl Source for FileSource {
    fn run(self: Box<Self>, out: SourceSender) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.pump(out))
    }

    fn rewindable(&self) -> bool {
        self.can_rewind()
    }
}

#[cfg(test)]
mod rewind_tests {
    use super::*;
    use crate::outlet::testing::channel;

    fn source(dir: &Path, extra: serde_json::Value) -> FileSource {
        let mut def = StreamDef {
            name: "t".into(),
            kind: weir_planner::StreamKind::Stream,
            fields: None,
            options: Default::default(),
            sql: String::new(),
        };
        def.options.datasource = Some("in".into());
        def.options.extra = Some(extra.to_string());
        FileSource::new(&def, &Environment::new(dir)).unwrap()
    }

    /// Rows are counted over all files in name order: resuming at 4 of
    /// 3 + 2 rows sends only the last one.
    #[tokio::test]
    async fn resumes_after_the_rows_it_had_sent() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("in")).unwrap();
        std::fs::write(dir.path().join("in/a.json"), r#"[{"i":1},{"i":2},{"i":3}]"#).unwrap();
        std::fs::write(dir.path().join("in/b.json"), r#"[{"i":4},{"i":5}]"#).unwrap();
        let s = source(dir.path(), serde_json::json!({}));
        assert!(s.can_rewind());
        let (mut outlet, mut rx, _stop) = channel(8);
        outlet.resume = 4;
        tokio::spawn(s.pump(outlet));
        let mut got = Vec::new();
        while let Some(batch) = rx.recv().await {
            got.extend(batch.into_iter().map(|p| format!("{:?}", p.data)));
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains('5'), "{got:?}");
    }

    /// Files that go away after reading, or are read again and again,
    /// cannot be re-read from a position: they go through the ingest log.
    #[test]
    fn moving_or_rereading_files_is_not_rewindable() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!source(dir.path(), serde_json::json!({"actionAfterRead": 1})).can_rewind());
        assert!(!source(dir.path(), serde_json::json!({"interval": 1000})).can_rewind());
    }
}
