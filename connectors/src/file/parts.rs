//! Exactly-once output of the file sink (`qos: 2`): one part file per
//! checkpoint epoch, written under a temporary name and renamed into place.
//!
//! Messages that carry a deterministic id `<rule>/<epoch>/<seq>` reach the
//! sink only after their epoch committed, epoch by epoch in order. The
//! messages of epoch `n` for target `dir/out.txt` are appended to
//! `dir/.out.txt.<n>.tmp`; the part becomes visible as `dir/out.txt.<n>`
//! (20 digits, so names sort by epoch) by an atomic rename, after an fsync,
//! when the next epoch's messages start, when the rule's sink asks for a
//! delivery confirmation (`flush`, after each batch of committed outputs)
//! or when the rule stops. The visible output is the parts in name order.
//!
//! After a kill, a restored rule sends again every committed epoch whose
//! delivery was not confirmed, and at least the newest one, with the same
//! messages: their parts are rewritten from scratch and replace the
//! visible ones (never appended to), so the parts equal the output of a
//! run without failure. A temporary part left by the crash is of an epoch
//! sent again (dropped) or of an older one, written in full before a later
//! epoch was sent (renamed now).

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::FileType;
use crate::transform::Outgoing;

/// The epoch of an id `<rule>/<epoch>/<seq>` (`sendSingle`: with `/<row>`).
pub(super) fn epoch_of(id: &str, send_single: bool) -> Option<u64> {
    let mut parts = id.rsplit('/');
    if send_single {
        parts.next()?;
    }
    parts.next()?;
    parts.next()?.parse().ok()
}

/// The visible part of `epoch` of `target`.
pub(super) fn part_path(target: &Path, epoch: u64) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{epoch:020}"));
    target.with_file_name(name)
}

fn tmp_path(target: &Path, epoch: u64) -> PathBuf {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    target.with_file_name(format!(".{name}.{epoch:020}.tmp"))
}

/// Where the part of the newest epoch of one target stands.
enum State {
    /// Being appended to (the temporary file).
    Writing(BufWriter<File>),
    /// Complete and synced under the temporary name; the rename failed
    /// and is retried.
    Sealed,
    /// Renamed into place: visible and complete as far as it was sent.
    Visible,
}

struct Part {
    epoch: u64,
    state: State,
    /// Messages in the part (json: whether a comma is due).
    written: u64,
}

/// The parts of every target path of one sink.
pub(super) struct Parts {
    file_type: FileType,
    /// `Some(delimiter)`: a csv header line at the top of each part.
    header: Option<String>,
    open: HashMap<PathBuf, Part>,
    /// Targets whose leftovers from a crash have been dealt with.
    recovered: HashSet<PathBuf>,
}

impl Parts {
    pub(super) fn new(file_type: FileType, header: Option<String>) -> Parts {
        Parts { file_type, header, open: HashMap::new(), recovered: HashSet::new() }
    }

    /// Appends a message of `epoch` to the part of `target`.
    ///
    /// # Errors
    /// I/O, or a message of an epoch older than the one being written
    /// (epochs come in order; the message is refused rather than mixed in).
    pub(super) fn write(&mut self, target: &Path, epoch: u64, msg: &Outgoing) -> std::io::Result<()> {
        if self.recovered.insert(target.to_path_buf()) {
            self.recover(target, epoch)?;
        }
        let current = self.open.get(target).map(|p| p.epoch);
        match current {
            Some(e) if e > epoch => {
                return Err(std::io::Error::other(format!(
                    "message of epoch {epoch} after epoch {e} for {}",
                    target.display()
                )))
            }
            Some(e) if e == epoch => self.reopen(target)?,
            Some(_) => {
                self.finalize(target)?;
                self.start(target, epoch, msg)?;
            }
            None => self.start(target, epoch, msg)?,
        }
        let file_type = self.file_type;
        let part = self.open.get_mut(target).ok_or_else(|| std::io::Error::other("part vanished"))?;
        let State::Writing(out) = &mut part.state else {
            return Err(std::io::Error::other("part not open"));
        };
        match file_type {
            FileType::Json => {
                if part.written > 0 {
                    out.write_all(b",")?;
                }
                out.write_all(&msg.bytes)?;
            }
            FileType::Lines | FileType::Csv => {
                out.write_all(msg.bytes.strip_suffix(b"\n").unwrap_or(&msg.bytes))?;
                out.write_all(b"\n")?;
            }
        }
        part.written += 1;
        // Flushed per message: what was sent survives a kill in the
        // temporary file (see `recover`).
        out.flush()
    }

    /// Makes every part being written visible.
    ///
    /// # Errors
    /// The first I/O error; the other parts are still attempted.
    pub(super) fn finalize_all(&mut self) -> std::io::Result<()> {
        let targets: Vec<PathBuf> = self.open.keys().cloned().collect();
        let mut first = Ok(());
        for t in targets {
            if let Err(e) = self.finalize(&t) {
                tracing::warn!("file sink: cannot finalize the part of {}: {e}", t.display());
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// Starts the part of `epoch` afresh (a re-sent epoch overwrites).
    fn start(&mut self, target: &Path, epoch: u64, msg: &Outgoing) -> std::io::Result<()> {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let f = OpenOptions::new().create(true).write(true).truncate(true).open(tmp_path(target, epoch))?;
        let mut out = BufWriter::new(f);
        if self.file_type == FileType::Json {
            out.write_all(b"[")?;
        }
        if let Some(d) = &self.header {
            out.write_all(super::sink::header(&msg.value, d).as_bytes())?;
        }
        self.open.insert(target.to_path_buf(), Part { epoch, state: State::Writing(out), written: 0 });
        Ok(())
    }

    /// More messages of an epoch whose part was made visible (a flush
    /// between them): the visible part is copied back to the temporary
    /// name to go on.
    fn reopen(&mut self, target: &Path) -> std::io::Result<()> {
        let json = self.file_type == FileType::Json;
        let Some(part) = self.open.get_mut(target) else { return Ok(()) };
        if let State::Writing(_) = part.state {
            return Ok(());
        }
        let tmp = tmp_path(target, part.epoch);
        if let State::Visible = part.state {
            std::fs::copy(part_path(target, part.epoch), &tmp)?;
        }
        let mut f = OpenOptions::new().write(true).open(&tmp)?;
        let end = f.seek(SeekFrom::End(0))?;
        if json {
            // Drop the closing `]`; it is written again at the end.
            f.set_len(end.saturating_sub(1))?;
            f.seek(SeekFrom::End(0))?;
        }
        part.state = State::Writing(BufWriter::new(f));
        Ok(())
    }

    /// Closes the part being written and renames it into place, durably.
    fn finalize(&mut self, target: &Path) -> std::io::Result<()> {
        let json = self.file_type == FileType::Json;
        let Some(part) = self.open.get_mut(target) else { return Ok(()) };
        if let State::Writing(out) = &mut part.state {
            if json {
                out.write_all(b"]")?;
            }
            out.flush()?;
            out.get_ref().sync_data()?;
            part.state = State::Sealed;
        }
        if !matches!(part.state, State::Sealed) {
            return Ok(());
        }
        std::fs::rename(tmp_path(target, part.epoch), part_path(target, part.epoch))?;
        part.state = State::Visible;
        sync_dir(target)
    }

    /// Deals with the temporary parts of `target` that a killed process
    /// left, before the first message (of `epoch`) after a start: a part
    /// of an older epoch was sent in full (the restored epoch, the newest
    /// one sent, is at least `epoch`) and only missed its rename; a part of
    /// `epoch` or later is sent again from the start, so it is dropped.
    fn recover(&mut self, target: &Path, epoch: u64) -> std::io::Result<()> {
        let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else { return Ok(()) };
        let prefix = format!(".{}.", name.to_string_lossy());
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some(e) = file
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".tmp"))
                .filter(|n| n.len() == 20)
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if e >= epoch {
                std::fs::remove_file(entry.path())?;
                continue;
            }
            // A json part killed before its rename may lack the `]`
            // that closes it (its last message can end in `]` too, so
            // whether it parses decides).
            let closed =
                || std::fs::read(entry.path()).is_ok_and(|b| serde_json::from_slice::<serde_json::Value>(&b).is_ok());
            if self.file_type == FileType::Json && !closed() {
                let mut f = OpenOptions::new().append(true).open(entry.path())?;
                f.write_all(b"]")?;
                f.sync_data()?;
            }
            tracing::info!("file sink: completing part {e} of {} left by a restart", target.display());
            std::fs::rename(entry.path(), part_path(target, e))?;
        }
        sync_dir(target)
    }
}

/// Makes a rename in `target`'s directory durable.
fn sync_dir(target: &Path) -> std::io::Result<()> {
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}
