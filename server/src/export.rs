//! Export of the current filter: JSON Lines (lossless, re-importable) or CSV
//! (summary columns), streamed in batches so a large export holds no memory.

use axum::body::Bytes;
use futures::{stream, Stream};

use std::sync::Arc;

use crate::domain::Mask;
use crate::store::{Filter, Store, StoredMessage};

const BATCH: i64 = 200;
pub const CSV_HEADER: &str = "id,status,received_at,vhost,queue,service,exchange,routing_key,reason\n";

/// The `format` an export is asked for, by its file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
pub enum Format {
    #[strum(serialize = "jsonl")]
    JsonLines,
    #[strum(serialize = "csv")]
    Csv,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::JsonLines => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        self.into()
    }

    fn render(self, m: &StoredMessage, out: &mut String) {
        match self {
            Format::JsonLines => out.push_str(&m.export_record().to_string()),
            Format::Csv => {
                let fields: Vec<String> = m.csv_fields().iter().map(|f| csv_field(f)).collect();
                out.push_str(&fields.join(","));
            }
        }
        out.push('\n');
    }
}

/// RFC 4180 quoting; a leading `=`, `+`, `-` or `@` is defused so a
/// spreadsheet does not run an attacker's formula from a message header.
pub fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// The export's bytes: batches fetched one after another as the client reads.
/// With `mask`, each message is masked as it is written.
pub fn stream(
    store: Store,
    filter: Filter,
    format: Format,
    mask: Option<Arc<Mask>>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    struct State {
        before: Option<i64>,
        header: bool,
        done: bool,
    }
    let start = State {
        before: None,
        header: format == Format::Csv,
        done: false,
    };
    stream::unfold(start, move |mut st| {
        let (store, filter, mask) = (store.clone(), filter.clone(), mask.clone());
        async move {
            if st.done {
                return None;
            }
            let mut out = String::new();
            if std::mem::take(&mut st.header) {
                out.push_str(CSV_HEADER);
            }
            match store.export_batch(&filter, st.before, BATCH).await {
                Ok(batch) => {
                    st.done = (batch.len() as i64) < BATCH;
                    st.before = batch.last().map(StoredMessage::id);
                    for mut m in batch {
                        if let Some(mask) = &mask {
                            m.mask(mask);
                        }
                        format.render(&m, &mut out);
                    }
                    Some((Ok::<_, std::io::Error>(Bytes::from(out)), st))
                }
                Err(e) => {
                    // Headers are sent already: end the body with an error so
                    // the client sees a truncated transfer, not a short file.
                    tracing::error!(error = %e, "export failed");
                    st.done = true;
                    Some((Err(std::io::Error::other("export failed")), st))
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{csv_field, Format};

    #[test]
    fn formats_are_named_by_their_extension() {
        assert_eq!("jsonl".parse::<Format>(), Ok(Format::JsonLines));
        assert_eq!("csv".parse::<Format>(), Ok(Format::Csv));
        assert!("xml".parse::<Format>().is_err());
        assert_eq!(Format::Csv.extension(), "csv");
    }

    #[test]
    fn csv_quoting_and_formula_defusing() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
    }
}
