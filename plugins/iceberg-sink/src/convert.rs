//! JSON payloads to Arrow rows by a table's schema.
//!
//! A whole batch is decoded in one pass (arrow-json's tape decoder); only when that
//! fails are the rows decoded one by one to find which ones do not fit and why, so the
//! common case costs one decode.

use std::sync::Arc;

use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_json::ReaderBuilder;
use arrow_schema::{Field, Schema as ArrowSchema, SchemaRef};

/// A row that does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index of the row in the input.
    pub index: usize,
    /// The field at fault, when known.
    pub field: Option<String>,
    /// Why.
    pub reason: String,
}

impl Rejected {
    /// `field `x`: reason` or just the reason.
    pub fn describe(&self) -> String {
        match &self.field {
            Some(f) => format!("field `{f}`: {}", self.reason),
            None => self.reason.clone(),
        }
    }
}

/// Converts JSON payloads into record batches of one table schema.
pub struct RowConverter {
    /// The Arrow schema of the table (with Iceberg field ids), as written.
    schema: SchemaRef,
    /// The same with every top-level column nullable: decoded into first, so a missing
    /// required value is reported by us, with its field, not as a decoder failure.
    relaxed: SchemaRef,
    /// Index and name of each required top-level column.
    required: Vec<(usize, String)>,
}

impl RowConverter {
    /// A converter for this Iceberg schema.
    pub fn new(schema: &iceberg::spec::Schema) -> Result<RowConverter, String> {
        let arrow = iceberg::arrow::schema_to_arrow_schema(schema)
            .map_err(|e| format!("cannot map the table schema to Arrow: {}", e.message()))?;
        let required = arrow
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.is_nullable())
            .map(|(i, f)| (i, f.name().clone()))
            .collect();
        let relaxed: Vec<Field> = arrow
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let relaxed = ArrowSchema::new_with_metadata(relaxed, arrow.metadata().clone());
        Ok(RowConverter {
            schema: Arc::new(arrow),
            relaxed: Arc::new(relaxed),
            required,
        })
    }

    /// The Arrow schema batches come out with.
    #[cfg(test)]
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Converts `rows` (one JSON object each). Returns the batch of the rows that fit,
    /// in input order, and the rows that do not.
    pub fn convert(&self, rows: &[&[u8]]) -> (Option<RecordBatch>, Vec<Rejected>) {
        if rows.is_empty() {
            return (None, Vec::new());
        }
        let mut rejected = Vec::new();
        let decoded = match self.decode(rows) {
            Ok(batch) if batch.num_rows() == rows.len() => batch,
            _ => {
                // Find the rows at fault, then decode the others together.
                let mut good: Vec<&[u8]> = Vec::with_capacity(rows.len());
                let mut good_index = Vec::with_capacity(rows.len());
                for (index, row) in rows.iter().enumerate() {
                    match self.decode(std::slice::from_ref(row)) {
                        Ok(b) if b.num_rows() == 1 => {
                            good.push(row);
                            good_index.push(index);
                        }
                        Ok(b) => rejected.push(Rejected {
                            index,
                            field: None,
                            reason: format!(
                                "the payload holds {} JSON values, expected one object",
                                b.num_rows()
                            ),
                        }),
                        Err(reason) => rejected.push(rejection(index, &reason)),
                    }
                }
                if good.is_empty() {
                    return (None, rejected);
                }
                match self.decode(&good) {
                    Ok(b) if b.num_rows() == good.len() => {
                        return self.finish(b, &good_index, rejected);
                    }
                    other => {
                        // Should not happen (each row decoded alone); reject all rather
                        // than guess.
                        let reason = match other {
                            Err(e) => e,
                            Ok(_) => "rows decoded alone and together differ".to_string(),
                        };
                        for index in good_index {
                            rejected.push(Rejected {
                                index,
                                field: None,
                                reason: reason.clone(),
                            });
                        }
                        rejected.sort_by_key(|r| r.index);
                        return (None, rejected);
                    }
                }
            }
        };
        let all: Vec<usize> = (0..rows.len()).collect();
        self.finish(decoded, &all, rejected)
    }

    /// Checks required columns, drops the rows missing one, and gives the batch the
    /// table's schema.
    fn finish(
        &self,
        batch: RecordBatch,
        index_of: &[usize],
        mut rejected: Vec<Rejected>,
    ) -> (Option<RecordBatch>, Vec<Rejected>) {
        let mut keep = vec![true; batch.num_rows()];
        let mut dropped = false;
        for (col, name) in &self.required {
            let column = batch.column(*col);
            if column.null_count() == 0 {
                continue;
            }
            for (row, kept) in keep.iter_mut().enumerate() {
                if column.is_null(row) && *kept {
                    *kept = false;
                    dropped = true;
                    rejected.push(Rejected {
                        index: index_of[row],
                        field: Some(name.clone()),
                        reason: "is required but missing or null".to_string(),
                    });
                }
            }
        }
        rejected.sort_by_key(|r| r.index);
        let batch = if dropped {
            let mask = BooleanArray::from(keep);
            match arrow_select::filter::filter_record_batch(&batch, &mask) {
                Ok(b) => b,
                Err(e) => {
                    return (
                        None,
                        vec![Rejected {
                            index: 0,
                            field: None,
                            reason: e.to_string(),
                        }],
                    )
                }
            }
        } else {
            batch
        };
        if batch.num_rows() == 0 {
            return (None, rejected);
        }
        match RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec()) {
            Ok(b) => (Some(b), rejected),
            Err(e) => (
                None,
                vec![Rejected {
                    index: 0,
                    field: None,
                    reason: e.to_string(),
                }],
            ),
        }
    }

    fn decode(&self, rows: &[&[u8]]) -> Result<RecordBatch, String> {
        let mut decoder = ReaderBuilder::new(self.relaxed.clone())
            .with_batch_size(rows.len().max(1))
            .build_decoder()
            .map_err(|e| e.to_string())?;
        for row in rows {
            let mut buf: &[u8] = row;
            while !buf.is_empty() {
                let read = decoder.decode(buf).map_err(|e| e.to_string())?;
                if read == 0 {
                    break;
                }
                buf = &buf[read..];
            }
            // A separator, so two payloads never run into one value.
            decoder.decode(b"\n").map_err(|e| e.to_string())?;
        }
        match decoder.flush().map_err(|e| e.to_string())? {
            Some(b) => Ok(b),
            None => Ok(RecordBatch::new_empty(self.relaxed.clone())),
        }
    }
}

/// A decoder error for one row, with the field it names.
fn rejection(index: usize, error: &str) -> Rejected {
    let text = error.strip_prefix("Json error: ").unwrap_or(error);
    if let Some(rest) = text.strip_prefix("whilst decoding field '") {
        if let Some((field, reason)) = rest.split_once("': ") {
            return Rejected {
                index,
                field: Some(field.to_string()),
                reason: reason.to_string(),
            };
        }
    }
    let reason = if text.starts_with("expected {") {
        format!("the payload is not a JSON object ({text})")
    } else if text.is_empty() {
        "the payload is empty".to_string()
    } else {
        text.to_string()
    };
    Rejected {
        index,
        field: None,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{cast::AsArray, types};
    use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};

    fn schema() -> Schema {
        Schema::builder()
            .with_fields(vec![
                NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
                NestedField::optional(2, "name", Type::Primitive(PrimitiveType::String)).into(),
                NestedField::optional(3, "amount", Type::Primitive(PrimitiveType::Double)).into(),
                NestedField::optional(4, "ts", Type::Primitive(PrimitiveType::Timestamptz)).into(),
                NestedField::optional(5, "ok", Type::Primitive(PrimitiveType::Boolean)).into(),
            ])
            .build()
            .unwrap()
    }

    #[test]
    fn rows_become_typed_columns() {
        let c = RowConverter::new(&schema()).unwrap();
        let rows: Vec<&[u8]> = vec![
            br#"{"id": 1, "name": "a", "amount": 1.5, "ts": "2026-11-28T10:00:00Z", "ok": true, "extra": [1]}"#,
            br#"{"id": 2}"#,
        ];
        let (batch, rejected) = c.convert(&rows);
        assert!(rejected.is_empty(), "{rejected:?}");
        let batch = batch.unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), *c.schema());
        let ids = batch.column(0).as_primitive::<types::Int64Type>();
        assert_eq!(ids.values(), &[1, 2]);
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "a");
        assert!(batch.column(1).is_null(1));
        let ts = batch
            .column(3)
            .as_primitive::<types::TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_795_860_000_000_000);
    }

    #[test]
    fn rows_that_do_not_fit_are_named_with_field_and_reason() {
        let c = RowConverter::new(&schema()).unwrap();
        let rows: Vec<&[u8]> = vec![
            br#"{"id": 1}"#,
            br#"{"id": 2, "name": 5}"#,
            br#"{"name": "no id"}"#,
            br#"not json"#,
            br#"{"id": 5, "amount": "lots"}"#,
            br#"[1, 2]"#,
            br#"{"id": 7}"#,
        ];
        let (batch, rejected) = c.convert(&rows);
        let batch = batch.unwrap();
        let ids = batch.column(0).as_primitive::<types::Int64Type>();
        assert_eq!(ids.values(), &[1, 7]);
        let at: Vec<usize> = rejected.iter().map(|r| r.index).collect();
        assert_eq!(at, [1, 2, 3, 4, 5], "{rejected:?}");
        assert_eq!(rejected[0].field.as_deref(), Some("name"));
        assert_eq!(rejected[1].field.as_deref(), Some("id"));
        assert!(rejected[1].reason.contains("required"), "{:?}", rejected[1]);
        assert_eq!(rejected[3].field.as_deref(), Some("amount"));
        assert!(rejected[3].describe().contains("amount"));
        assert!(
            rejected[4].reason.contains("not a JSON object"),
            "{:?}",
            rejected[4]
        );
    }

    #[test]
    fn an_empty_payload_is_rejected() {
        let c = RowConverter::new(&schema()).unwrap();
        let (batch, rejected) = c.convert(&[b"", br#"{"id": 3}"#]);
        assert_eq!(batch.unwrap().num_rows(), 1);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].index, 0);
    }
}
