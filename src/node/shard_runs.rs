//! The shard runs this node has started, kept in its data directory.
//!
//! A shard must never start twice in one run: the other shards went on
//! without it, so only a rollback of all of them keeps the rule consistent
//! (see `shards`). Kept on disk because a process that dies and comes back
//! before its lease runs out finds the same run in the metadata; without
//! the record it would start its shard afresh in the middle of that run.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// (rule, shard index, run: the shard epochs of all its shards).
type Run = (String, u32, Vec<u64>);

/// The runs started here, as a file of JSON.
pub(crate) struct StartedRuns {
    path: PathBuf,
    runs: Mutex<Known>,
}

struct Known {
    runs: BTreeSet<Run>,
    /// The file could not be read: the first start of each shard here
    /// counts as a second one (a rollback too many is safe, a shard started
    /// twice in a run is not). The shards that had theirs.
    damaged: Option<BTreeSet<(String, u32)>>,
}

impl StartedRuns {
    /// The record in `path` (none yet: nothing started).
    pub(crate) fn open(path: PathBuf) -> StartedRuns {
        let known = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Known { runs: BTreeSet::new(), damaged: None },
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read the started shard runs");
                Known { runs: BTreeSet::new(), damaged: Some(BTreeSet::new()) }
            }
            Ok(bytes) => match serde_json::from_slice::<Vec<Run>>(&bytes) {
                Ok(runs) => Known { runs: runs.into_iter().collect(), damaged: None },
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "the started shard runs are damaged");
                    Known { runs: BTreeSet::new(), damaged: Some(BTreeSet::new()) }
                }
            },
        };
        StartedRuns { path, runs: Mutex::new(known) }
    }

    fn lock(&self) -> MutexGuard<'_, Known> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that shard `index` of `rule` starts in `run`; false if it
    /// did already (or may have: see [`Known::damaged`]).
    pub(crate) fn first_start(&self, rule: &str, index: u32, run: &[u64]) -> bool {
        let mut k = self.lock();
        let new = k.runs.insert((rule.to_string(), index, run.to_vec()));
        self.save(&k);
        let unsure = k.damaged.as_mut().is_some_and(|d| d.insert((rule.to_string(), index)));
        new && !unsure
    }

    /// Keeps the runs for which `current(rule, run)` holds (the others
    /// ended).
    pub(crate) fn retain(&self, current: impl Fn(&str, &[u64]) -> bool) {
        let mut k = self.lock();
        let before = k.runs.len();
        k.runs.retain(|(rule, _, run)| current(rule, run));
        if k.runs.len() != before {
            self.save(&k);
        }
    }

    /// Writes the record (a new file renamed over the old one, so a crash
    /// leaves one or the other).
    fn save(&self, k: &Known) {
        let runs: Vec<&Run> = k.runs.iter().collect();
        let tmp = self.path.with_extension("tmp");
        let written = serde_json::to_vec(&runs)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            tracing::error!(path = %self.path.display(), error = %e, "cannot record the started shard runs");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_starts_once_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard_runs.json");
        let runs = StartedRuns::open(path.clone());
        assert!(runs.first_start("r", 0, &[4, 5]));
        assert!(!runs.first_start("r", 0, &[4, 5]));
        assert!(runs.first_start("r", 1, &[4, 5]));
        // The process comes back: the same run is not new.
        let again = StartedRuns::open(path.clone());
        assert!(!again.first_start("r", 0, &[4, 5]));
        // A run that ended is forgotten; a new run starts.
        again.retain(|_, run| run == [6, 7]);
        assert!(again.first_start("r", 0, &[6, 7]));
        assert!(StartedRuns::open(path.clone()).lock().runs.len() == 1);
    }

    #[test]
    fn a_damaged_record_counts_every_run_as_started_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard_runs.json");
        std::fs::write(&path, b"{not json").unwrap();
        let runs = StartedRuns::open(path);
        assert!(!runs.first_start("r", 0, &[1, 2]), "may have started before the damage");
        runs.retain(|_, run| run == [3, 4]);
        assert!(runs.first_start("r", 0, &[3, 4]), "the next run starts");
        assert!(!runs.first_start("r", 1, &[3, 4]), "each shard once");
    }
}
