//! The `file` sink: appends messages to files, or with `qos: 2` writes
//! each epoch's messages as a part renamed into place ([`super::parts`]).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use weir_runtime::connector::{BoxFuture, Confirmation, Sink, SinkError};
use weir_runtime::Value;

use super::parts::{epoch_of, Parts};
use super::FileType;
use crate::format::{DelimitedEncoder, Encoder};
use crate::props::Props;
use crate::transform::{dynamic_prop, Outgoing, SinkConnector, SinkOptions, Template, TransformSink};
use crate::{Environment, Result};

/// Builds the sink: `fileType` `csv` implies format `delimited`, whose
/// header the sink writes once per file.
///
/// # Errors
/// Invalid common or file properties.
pub(crate) fn build(props: &serde_json::Value, env: &Environment) -> Result<Box<dyn Sink>> {
    let p = Props::new(props);
    let file_type = FileType::parse(p.str("fileType")?, FileType::Lines)?;
    let mut opts = SinkOptions::from_props(&p)?;
    let delimiter = p.str("delimiter")?.filter(|d| !d.is_empty()).unwrap_or(",").to_string();
    let has_header = p.bool("hasHeader")?.unwrap_or(false);
    if file_type == FileType::Csv {
        opts.encoder = Encoder::Delimited(DelimitedEncoder::new(&delimiter, false));
    }
    let path = p.str("path")?.filter(|s| !s.is_empty()).unwrap_or("cache");
    let header = (file_type == FileType::Csv && has_header).then_some(delimiter);
    let sink = FileSink {
        path: dynamic_prop("path", path)?,
        dir: env.data_dir.clone(),
        file_type,
        send_single: opts.send_single,
        parts: Parts::new(file_type, header.clone()),
        header,
        files: HashMap::new(),
    };
    Ok(Box::new(TransformSink::new(opts, sink)))
}

struct OpenFile {
    out: BufWriter<File>,
    /// Messages written (json: whether a comma is due).
    written: u64,
}

/// Appends messages to the file their `path` renders to.
pub(crate) struct FileSink {
    path: Template,
    dir: PathBuf,
    file_type: FileType,
    /// `Some(delimiter)`: write a csv header line at the top of new files.
    header: Option<String>,
    files: HashMap<PathBuf, OpenFile>,
    /// How ids end (`sendSingle` adds the row).
    send_single: bool,
    /// Exactly-once output: messages with ids go into epoch parts.
    parts: Parts,
}

impl FileSink {
    fn write(&mut self, msg: &Outgoing) -> std::io::Result<()> {
        let rendered = self.path.render(&msg.source).map_err(|e| std::io::Error::other(e.to_string()))?;
        let path = {
            let p = PathBuf::from(rendered);
            if p.is_absolute() {
                p
            } else {
                self.dir.join(p)
            }
        };
        if let Some(id) = &msg.id {
            let epoch = epoch_of(id, self.send_single)
                .ok_or_else(|| std::io::Error::other(format!("malformed output id {id:?}")))?;
            return self.parts.write(&path, epoch, msg);
        }
        if !self.files.contains_key(&path) {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let existing = path.metadata().map(|m| m.len()).unwrap_or(0);
            // A json file is one array: start it afresh. Other types append.
            let json = self.file_type == FileType::Json;
            let f = OpenOptions::new().create(true).append(!json).write(true).truncate(json).open(&path)?;
            let mut out = BufWriter::new(f);
            if self.file_type == FileType::Json {
                out.write_all(b"[")?;
            }
            if let (Some(d), 0) = (&self.header, existing) {
                out.write_all(header(&msg.value, d).as_bytes())?;
            }
            self.files.insert(path.clone(), OpenFile { out, written: 0 });
        }
        let f = self.files.get_mut(&path).ok_or_else(|| std::io::Error::other("file vanished"))?;
        match self.file_type {
            FileType::Json => {
                if f.written > 0 {
                    f.out.write_all(b",")?;
                }
                f.out.write_all(&msg.bytes)?;
            }
            FileType::Lines | FileType::Csv => {
                let bytes = msg.bytes.strip_suffix(b"\n").unwrap_or(&msg.bytes);
                f.out.write_all(bytes)?;
                f.out.write_all(b"\n")?;
            }
        }
        f.written += 1;
        // Flushed per message: a reader (or a crash) sees whole lines.
        f.out.flush()
    }
}

/// The csv header: the columns of the first row (sorted keys).
pub(super) fn header(v: &Value, delimiter: &str) -> String {
    let first = match v {
        Value::Array(a) => a.first(),
        other => Some(other),
    };
    match first.and_then(Value::as_map) {
        Some(m) if !m.is_empty() => format!("{}\n", m.keys().cloned().collect::<Vec<_>>().join(delimiter)),
        _ => String::new(),
    }
}

impl SinkConnector for FileSink {
    fn publish<'a>(&'a mut self, msg: &'a Outgoing) -> BoxFuture<'a, std::result::Result<(), SinkError>> {
        let r = self.write(msg).map_err(|e| SinkError(format!("file sink: {e}")));
        Box::pin(std::future::ready(r))
    }

    /// Makes the parts written so far visible (fsync, rename): the
    /// confirmation means they are in place and durable.
    fn flush(&mut self) -> BoxFuture<'_, Confirmation> {
        let done = self.parts.finalize_all().map_err(|e| SinkError(format!("file sink: {e}")));
        let confirmation: Confirmation = Box::pin(std::future::ready(done));
        Box::pin(std::future::ready(confirmation))
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        // Errors are logged inside.
        let _ = self.parts.finalize_all();
        for (path, mut f) in self.files.drain() {
            let r = if self.file_type == FileType::Json { f.out.write_all(b"]") } else { Ok(()) };
            if let Err(e) = r.and_then(|_| f.out.flush()) {
                tracing::warn!("file sink: closing {}: {e}", path.display());
            }
        }
        Box::pin(async {})
    }
}
