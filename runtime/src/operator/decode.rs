//! The decoder stage of a source: payloads to rows.

use crate::decode::Decoder;
use crate::operator::{Operator, Output};
use crate::row::{Batch, Payload, PayloadData};
use crate::value::Value;

/// Decodes a source's payloads; malformed payloads are counted as
/// exceptions and dropped, and the rule goes on.
pub struct DecodeOp {
    decoder: Decoder,
    meta_slot: Option<usize>,
}

impl DecodeOp {
    /// A decoder stage; `meta_slot` receives the payload metadata.
    pub fn new(decoder: Decoder, meta_slot: Option<usize>) -> DecodeOp {
        DecodeOp { decoder, meta_slot }
    }
}

impl Operator for DecodeOp {
    fn process(&mut self, _input: usize, batch: Batch, _now: i64, out: &mut Output) {
        out.data(batch);
    }

    fn process_payloads(&mut self, payloads: Vec<Payload>, _now: i64, out: &mut Output) {
        let mut rows = Vec::with_capacity(payloads.len());
        for p in payloads {
            let first = rows.len();
            let r = match &p.data {
                PayloadData::Bytes(b) => self.decoder.decode_json(b, p.ts, &mut rows),
                PayloadData::Object(m) => self.decoder.decode_map(m, p.ts).map(|r| rows.push(r)),
            };
            if let Err(e) = r {
                out.error(e);
            }
            if let (Some(slot), Some(meta)) = (self.meta_slot, &p.meta) {
                for row in &mut rows[first..] {
                    if let Some(cell) = row.slots.get_mut(slot) {
                        *cell = Value::map(meta.clone());
                    }
                }
            }
        }
        out.data(Batch::events(rows));
    }
}
