//! Name resolution: which source and slot a column reference means.

use crate::ast::SourceRef;
use crate::catalog::{Catalog, StreamDef};
use crate::error::{Error, Pos, Result};
use crate::plan::{ColumnSlot, PExpr, SourcePlan};
use crate::types::DataType;

/// The sources of a query and the slots handed out so far.
pub(crate) struct Scope {
    pub(crate) sources: Vec<SourcePlan>,
    next_slot: u32,
}

impl Scope {
    /// Resolves the FROM and JOIN sources against the catalog.
    pub(crate) fn new(refs: &[&SourceRef], catalog: &Catalog) -> Result<Scope> {
        let mut sources = Vec::new();
        for r in refs {
            let def = catalog
                .get(&r.name)
                .ok_or_else(|| Error::plan(r.pos, format!("stream or table {} not found", r.name)))?;
            let plan = SourcePlan {
                name: r.name.clone(),
                alias: r.alias.clone(),
                def: def.clone(),
                columns: Vec::new(),
                all_slot: None,
                meta_slot: None,
            };
            if sources.iter().any(|s: &SourcePlan| s.name == r.name && s.alias == r.alias) {
                return Err(Error::plan(r.pos, format!("source {} appears twice; give it an alias", r.name)));
            }
            sources.push(plan);
        }
        Ok(Scope { sources, next_slot: 0 })
    }

    /// Hands out a fresh slot.
    pub(crate) fn alloc(&mut self) -> u32 {
        let s = self.next_slot;
        self.next_slot += 1;
        s
    }

    /// Slots handed out so far: the input row width.
    pub(crate) fn width(&self) -> u32 {
        self.next_slot
    }

    /// The source named or aliased `q`.
    pub(crate) fn source_index(&self, q: &str) -> Option<u16> {
        self.sources
            .iter()
            .position(|s| s.alias.as_deref() == Some(q) || (s.alias.is_none() && s.name == q))
            .or_else(|| self.sources.iter().position(|s| s.name == q))
            .map(|i| i as u16)
    }

    fn def(&self, i: u16) -> &StreamDef {
        &self.sources[i as usize].def
    }

    /// The slot of column `name` of source `i`, allocated on first use.
    /// Errors if the source has a schema without that field.
    pub(crate) fn column(&mut self, i: u16, name: &str, pos: Pos) -> Result<u32> {
        if let Some(c) = self.sources[i as usize].columns.iter().find(|c| c.name == name) {
            return Ok(c.slot);
        }
        let data_type = match &self.def(i).fields {
            Some(_) => Some(
                self.def(i)
                    .field(name)
                    .ok_or_else(|| {
                        Error::plan(pos, format!("unknown field {name} in stream {}", self.sources[i as usize].name))
                    })?
                    .data_type
                    .clone(),
            ),
            None => None,
        };
        let slot = self.alloc();
        self.sources[i as usize].columns.push(ColumnSlot { name: name.to_string(), slot, data_type });
        Ok(slot)
    }

    /// Resolves an unqualified column across all sources: a declared field
    /// of exactly one schema'd source, else the schemaless sources (first
    /// non-null at run time when there are several).
    pub(crate) fn unqualified(&mut self, name: &str, pos: Pos) -> Result<PExpr> {
        let declared: Vec<u16> =
            (0..self.sources.len() as u16).filter(|&i| self.def(i).field(name).is_some()).collect();
        match declared.len() {
            1 => return Ok(PExpr::Slot(self.column(declared[0], name, pos)?)),
            n if n > 1 => return Err(Error::plan(pos, format!("ambiguous field {name}"))),
            _ => {}
        }
        let schemaless: Vec<u16> = (0..self.sources.len() as u16).filter(|&i| self.def(i).fields.is_none()).collect();
        match schemaless.len() {
            0 => Err(Error::plan(pos, format!("unknown field {name}"))),
            1 => Ok(PExpr::Slot(self.column(schemaless[0], name, pos)?)),
            _ => {
                let mut slots = Vec::new();
                for i in schemaless {
                    slots.push(self.column(i, name, pos)?);
                }
                Ok(PExpr::AnySlot(slots))
            }
        }
    }

    /// The declared type of a slot, if it is a typed column.
    pub(crate) fn slot_type(&self, slot: u32) -> Option<&DataType> {
        self.sources.iter().flat_map(|s| s.columns.iter()).find(|c| c.slot == slot).and_then(|c| c.data_type.as_ref())
    }

    /// Makes every column of source `i` available (for `*`): all declared
    /// fields, or the whole-message slot of a schemaless source.
    pub(crate) fn expand(&mut self, i: u16, pos: Pos) -> Result<()> {
        match self.def(i).fields.clone() {
            Some(fields) => {
                for f in fields {
                    self.column(i, &f.name, pos)?;
                }
            }
            None => {
                if self.sources[i as usize].all_slot.is_none() {
                    let s = self.alloc();
                    self.sources[i as usize].all_slot = Some(s);
                }
            }
        }
        Ok(())
    }

    /// The metadata slot of source `i`.
    pub(crate) fn meta_slot(&mut self, i: u16) -> u32 {
        if let Some(s) = self.sources[i as usize].meta_slot {
            return s;
        }
        let s = self.alloc();
        self.sources[i as usize].meta_slot = Some(s);
        s
    }
}
