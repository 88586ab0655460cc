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
        let mut snapshot = false;
        for p in payloads {
            if p.is_snapshot_marker() {
                snapshot = true;
                continue;
            }
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
        out.data(if snapshot { Batch::snapshot(rows) } else { Batch::events(rows) });
    }
}

#[cfg(test)]
mod tests {
    use weir_planner::{parse_statement, ColumnSlot, SourcePlan, Statement};

    use super::*;
    use crate::row::Message;
    use crate::value::Map;

    fn decoder() -> DecodeOp {
        let Statement::Create(def) = parse_statement(r#"CREATE TABLE t () WITH (TYPE="sql")"#).unwrap() else {
            panic!("not a CREATE")
        };
        let plan = SourcePlan {
            name: def.name.clone(),
            alias: None,
            columns: vec![ColumnSlot { name: "a".into(), slot: 0, data_type: None }],
            def: *def,
            all_slot: None,
            meta_slot: None,
        };
        DecodeOp::new(Decoder::new(&plan, 0, 1, None), None)
    }

    fn object(a: i64) -> Payload {
        let mut m = Map::new();
        m.insert("a".into(), Value::Int(a));
        Payload { data: PayloadData::Object(m), ts: 1, meta: None }
    }

    fn decode(payloads: Vec<Payload>) -> Vec<Batch> {
        let mut out = Output::default();
        decoder().process_payloads(payloads, 0, &mut out);
        out.messages
            .into_iter()
            .filter_map(|m| match m {
                Message::Data(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_marked_send_is_one_snapshot_batch_and_the_marker_no_row() {
        let b = decode(vec![Payload::snapshot_marker(1), object(1), object(2)]);
        assert_eq!(b.len(), 1);
        assert!(b[0].snapshot);
        assert_eq!(b[0].rows.iter().map(|r| r.slots[0].clone()).collect::<Vec<_>>(), [Value::Int(1), Value::Int(2)]);
        // An empty pull is an empty snapshot, which still reaches the table.
        let b = decode(vec![Payload::snapshot_marker(1)]);
        assert_eq!(b.len(), 1);
        assert!(b[0].snapshot && b[0].rows.is_empty());
        // Without the marker: plain events; an empty object is a row.
        let b = decode(vec![object(3), Payload { data: PayloadData::Object(Map::new()), ts: 1, meta: None }]);
        assert!(!b[0].snapshot);
        assert_eq!(b[0].rows.len(), 2);
    }
}
