//! State in memory: tests, replay, and rules with `qos: 0`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Space, StateBackend, StateResult, Write};

/// A [`StateBackend`] in a mutex-protected ordered map.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    data: Mutex<BTreeMap<SpacedKey, Vec<u8>>>,
}

/// A key within its space.
type SpacedKey = (u8, Vec<u8>);

fn space_id(s: Space) -> u8 {
    s as u8
}

impl StateBackend for MemoryBackend {
    fn write(&self, writes: Vec<Write>, _sync: bool) -> StateResult<()> {
        let mut d = self.data.lock().unwrap_or_else(|e| e.into_inner());
        for w in writes {
            match w {
                Write::Put(s, k, v) => {
                    d.insert((space_id(s), k), v);
                }
                Write::Delete(s, k) => {
                    d.remove(&(space_id(s), k));
                }
                Write::DeleteRange(s, from, to) => {
                    let keys: Vec<_> =
                        d.range((space_id(s), from)..(space_id(s), to)).map(|(k, _)| k.clone()).collect();
                    for k in keys {
                        d.remove(&k);
                    }
                }
            }
        }
        Ok(())
    }

    fn get(&self, space: Space, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        let d = self.data.lock().unwrap_or_else(|e| e.into_inner());
        Ok(d.get(&(space_id(space), key.to_vec())).cloned())
    }

    fn scan(&self, space: Space, prefix: &[u8]) -> StateResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let d = self.data.lock().unwrap_or_else(|e| e.into_inner());
        Ok(d.range((space_id(space), prefix.to_vec())..)
            .take_while(|((s, k), _)| *s == space_id(space) && k.starts_with(prefix))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }
}
