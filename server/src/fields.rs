//! Lossless mapping between AMQP field tables / basic properties and JSON.
//!
//! Every value keeps its wire type (`{"type": "i16", "value": 7}`) so a stored
//! message can be republished byte-for-byte equivalent: a consumer that checks
//! `x-retries` as a `long` still sees a `long` after a replay.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use serde_json::{json, Map, Value};

/// Why a stored JSON value could not be turned back into an AMQP value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid field value at `{path}`: {reason}")]
pub struct FieldError {
    pub path: String,
    pub reason: String,
}

fn err(path: &str, reason: impl Into<String>) -> FieldError {
    FieldError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

pub fn table_to_json(table: &FieldTable) -> Value {
    Value::Object(
        table
            .inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), value_to_json(v)))
            .collect(),
    )
}

fn float_json(f: f64) -> Value {
    if f.is_finite() {
        json!(f)
    } else {
        // JSON has no NaN/inf; keep them as their Rust spelling so they parse back.
        json!(f.to_string())
    }
}

fn bytes_json(kind: &str, bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) if kind == "longstr" => json!({ "type": kind, "value": s }),
        _ => json!({ "type": kind, "base64": B64.encode(bytes) }),
    }
}

pub fn value_to_json(v: &AMQPValue) -> Value {
    let typed = |t: &str, value: Value| json!({ "type": t, "value": value });
    match v {
        AMQPValue::Boolean(b) => typed("bool", json!(b)),
        AMQPValue::ShortShortInt(n) => typed("i8", json!(n)),
        AMQPValue::ShortShortUInt(n) => typed("u8", json!(n)),
        AMQPValue::ShortInt(n) => typed("i16", json!(n)),
        AMQPValue::ShortUInt(n) => typed("u16", json!(n)),
        AMQPValue::LongInt(n) => typed("i32", json!(n)),
        AMQPValue::LongUInt(n) => typed("u32", json!(n)),
        AMQPValue::LongLongInt(n) => typed("i64", json!(n)),
        AMQPValue::Float(f) => typed("f32", float_json(f64::from(*f))),
        AMQPValue::Double(f) => typed("f64", float_json(*f)),
        AMQPValue::DecimalValue(d) => typed("decimal", json!({ "scale": d.scale, "value": d.value })),
        AMQPValue::ShortString(s) => typed("shortstr", json!(s.as_str())),
        AMQPValue::LongString(s) => bytes_json("longstr", s.as_bytes()),
        AMQPValue::FieldArray(a) => typed(
            "array",
            Value::Array(a.as_slice().iter().map(value_to_json).collect()),
        ),
        AMQPValue::Timestamp(t) => typed("timestamp", json!(t)),
        AMQPValue::FieldTable(t) => typed("table", table_to_json(t)),
        AMQPValue::ByteArray(b) => bytes_json("bytes", b.as_slice()),
        AMQPValue::Void => json!({ "type": "void" }),
    }
}

pub fn json_to_table(v: &Value, path: &str) -> Result<FieldTable, FieldError> {
    let obj = v
        .as_object()
        .ok_or_else(|| err(path, "expected an object of typed values"))?;
    let mut table = FieldTable::default();
    for (k, v) in obj {
        let child = format!("{path}.{k}");
        let key = ShortString::try_new(k.clone()).map_err(|_| err(&child, "key longer than 255 bytes"))?;
        table.insert(key, json_to_value(v, &child)?);
    }
    Ok(table)
}

fn int<T: TryFrom<i128>>(v: Option<&Value>, path: &str, kind: &str) -> Result<T, FieldError> {
    let n = v
        .and_then(|v| v.as_i64().map(i128::from).or(v.as_u64().map(i128::from)))
        .ok_or_else(|| err(path, format!("`{kind}` needs an integer value")))?;
    T::try_from(n).map_err(|_| err(path, format!("{n} does not fit in `{kind}`")))
}

fn float(v: Option<&Value>, path: &str) -> Result<f64, FieldError> {
    match v {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| err(path, "bad number")),
        Some(Value::String(s)) => s.parse().map_err(|_| err(path, "bad float")),
        _ => Err(err(path, "float needs a number")),
    }
}

fn bytes(obj: &Map<String, Value>, path: &str) -> Result<Vec<u8>, FieldError> {
    if let Some(b) = obj.get("base64") {
        let s = b.as_str().ok_or_else(|| err(path, "base64 must be a string"))?;
        return B64.decode(s).map_err(|e| err(path, format!("bad base64: {e}")));
    }
    match obj.get("value") {
        Some(Value::String(s)) => Ok(s.clone().into_bytes()),
        _ => Err(err(path, "needs a string `value` or `base64`")),
    }
}

pub fn json_to_value(v: &Value, path: &str) -> Result<AMQPValue, FieldError> {
    let obj = v
        .as_object()
        .ok_or_else(|| err(path, "expected {\"type\": ..., \"value\": ...}"))?;
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| err(path, "missing `type`"))?;
    let val = obj.get("value");
    Ok(match kind {
        "bool" => AMQPValue::Boolean(
            val.and_then(Value::as_bool)
                .ok_or_else(|| err(path, "bool needs true/false"))?,
        ),
        "i8" => AMQPValue::ShortShortInt(int(val, path, kind)?),
        "u8" => AMQPValue::ShortShortUInt(int(val, path, kind)?),
        "i16" => AMQPValue::ShortInt(int(val, path, kind)?),
        "u16" => AMQPValue::ShortUInt(int(val, path, kind)?),
        "i32" => AMQPValue::LongInt(int(val, path, kind)?),
        "u32" => AMQPValue::LongUInt(int(val, path, kind)?),
        "i64" => AMQPValue::LongLongInt(int(val, path, kind)?),
        "timestamp" => AMQPValue::Timestamp(int(val, path, kind)?),
        // f32 -> f64 -> f32 is exact, so the narrowing cast restores the original.
        "f32" => AMQPValue::Float(float(val, path)? as f32),
        "f64" => AMQPValue::Double(float(val, path)?),
        "decimal" => {
            let d = val.ok_or_else(|| err(path, "decimal needs a value"))?;
            AMQPValue::DecimalValue(DecimalValue {
                scale: int(d.get("scale"), path, "decimal scale")?,
                value: int(d.get("value"), path, "decimal value")?,
            })
        }
        "shortstr" => AMQPValue::ShortString(
            ShortString::try_new(
                val.and_then(Value::as_str)
                    .ok_or_else(|| err(path, "shortstr needs a string"))?,
            )
            .map_err(|_| err(path, "shortstr longer than 255 bytes"))?,
        ),
        "longstr" => AMQPValue::LongString(LongString::from(bytes(obj, path)?)),
        "bytes" => AMQPValue::ByteArray(ByteArray::from(bytes(obj, path)?)),
        "array" => {
            let items = val
                .and_then(Value::as_array)
                .ok_or_else(|| err(path, "array needs a list"))?;
            let mut arr = FieldArray::default();
            for (i, item) in items.iter().enumerate() {
                arr.push(json_to_value(item, &format!("{path}[{i}]"))?);
            }
            AMQPValue::FieldArray(arr)
        }
        "table" => AMQPValue::FieldTable(json_to_table(
            val.ok_or_else(|| err(path, "table needs a value"))?,
            path,
        )?),
        "void" => AMQPValue::Void,
        other => return Err(err(path, format!("unknown type `{other}`"))),
    })
}

/// Basic properties except headers, with AMQP names in snake_case.
pub fn properties_to_json(p: &BasicProperties) -> Value {
    let mut m = Map::new();
    let mut s = |k: &str, v: &Option<ShortString>| {
        if let Some(v) = v {
            m.insert(k.to_owned(), json!(v.as_str()));
        }
    };
    s("content_type", p.content_type());
    s("content_encoding", p.content_encoding());
    s("correlation_id", p.correlation_id());
    s("reply_to", p.reply_to());
    s("expiration", p.expiration());
    s("message_id", p.message_id());
    s("type", p.kind());
    s("user_id", p.user_id());
    s("app_id", p.app_id());
    s("cluster_id", p.cluster_id());
    if let Some(v) = p.delivery_mode() {
        m.insert("delivery_mode".into(), json!(v));
    }
    if let Some(v) = p.priority() {
        m.insert("priority".into(), json!(v));
    }
    if let Some(v) = p.timestamp() {
        m.insert("timestamp".into(), json!(v));
    }
    Value::Object(m)
}

pub fn json_to_properties(v: &Value) -> Result<BasicProperties, FieldError> {
    let obj = v
        .as_object()
        .ok_or_else(|| err("properties", "expected an object"))?;
    let mut p = BasicProperties::default();
    for (k, val) in obj {
        let path = format!("properties.{k}");
        let text = || -> Result<ShortString, FieldError> {
            let s = val.as_str().ok_or_else(|| err(&path, "expected a string"))?;
            ShortString::try_new(s).map_err(|_| err(&path, "longer than 255 bytes"))
        };
        p = match k.as_str() {
            "content_type" => p.with_content_type(text()?),
            "content_encoding" => p.with_content_encoding(text()?),
            "correlation_id" => p.with_correlation_id(text()?),
            "reply_to" => p.with_reply_to(text()?),
            "expiration" => p.with_expiration(text()?),
            "message_id" => p.with_message_id(text()?),
            "type" => p.with_type(text()?),
            "user_id" => p.with_user_id(text()?),
            "app_id" => p.with_app_id(text()?),
            "cluster_id" => p.with_cluster_id(text()?),
            "delivery_mode" => p.with_delivery_mode(int(Some(val), &path, "u8")?),
            "priority" => p.with_priority(int(Some(val), &path, "u8")?),
            "timestamp" => p.with_timestamp(int(Some(val), &path, "timestamp")?),
            other => return Err(err(&path, format!("unknown property `{other}`"))),
        };
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FieldTable {
        let mut inner = FieldTable::default();
        inner.insert("count".into(), AMQPValue::LongLongInt(-3));
        inner.insert("raw".into(), AMQPValue::ByteArray(vec![0, 255, 7].into()));
        let mut t = FieldTable::default();
        for (k, v) in [
            ("b", AMQPValue::Boolean(true)),
            ("i8", AMQPValue::ShortShortInt(-8)),
            ("u8", AMQPValue::ShortShortUInt(200)),
            ("i16", AMQPValue::ShortInt(-300)),
            ("u16", AMQPValue::ShortUInt(60000)),
            ("i32", AMQPValue::LongInt(i32::MIN)),
            ("u32", AMQPValue::LongUInt(u32::MAX)),
            ("i64", AMQPValue::LongLongInt(i64::MAX)),
            ("f32", AMQPValue::Float(1.1)),
            ("f64", AMQPValue::Double(f64::NAN)),
            (
                "dec",
                AMQPValue::DecimalValue(DecimalValue {
                    scale: 2,
                    value: 12345,
                }),
            ),
            ("s", AMQPValue::ShortString("short".into())),
            ("ls", AMQPValue::LongString("héllo".into())),
            ("bin", AMQPValue::LongString(vec![0xff, 0xfe].into())),
            ("ts", AMQPValue::Timestamp(1_700_000_000)),
            ("void", AMQPValue::Void),
            (
                "arr",
                AMQPValue::FieldArray(vec![AMQPValue::FieldTable(inner.clone())].into()),
            ),
            ("tbl", AMQPValue::FieldTable(inner)),
        ] {
            t.insert(k.into(), v);
        }
        t
    }

    #[test]
    fn field_table_round_trips_through_json() {
        let t = sample();
        let json = table_to_json(&t);
        let back = json_to_table(&json, "headers").unwrap();
        // NaN != NaN, so compare the JSON renderings, then every other value.
        assert_eq!(table_to_json(&back), json);
        for (k, v) in t.inner() {
            if k.as_str() != "f64" {
                assert_eq!(back.inner().get(k), Some(v), "{k}");
            }
        }
        assert_eq!(json["bin"]["base64"], "//4=");
        assert_eq!(json["ls"]["value"], "héllo");
    }

    #[test]
    fn bad_typed_values_are_rejected_with_their_path() {
        let e = json_to_table(&json!({"x": {"type": "u8", "value": 300}}), "headers").unwrap_err();
        assert_eq!(e.path, "headers.x");
        assert!(json_to_table(&json!({"x": {"type": "nope"}}), "h").is_err());
        assert!(json_to_table(&json!({"x": 5}), "h").is_err());
        assert!(json_to_table(&json!([1]), "h").is_err());
    }

    #[test]
    fn properties_round_trip() {
        let p = BasicProperties::default()
            .with_message_id("m-1".into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_priority(5)
            .with_timestamp(1_700_000_000)
            .with_type("OrderPlaced".into());
        let json = properties_to_json(&p);
        assert_eq!(json["message_id"], "m-1");
        assert_eq!(json["type"], "OrderPlaced");
        assert_eq!(json_to_properties(&json).unwrap(), p);
    }
}
