//! Hostile input to the header parsers and the field-table ↔ JSON mapping:
//! nested tables, arrays, byte arrays, decimals, timestamps, invalid UTF-8,
//! wrong types and huge traces. Nothing panics and the original bytes are
//! kept. Failing cases proptest finds are kept in `hostile.proptest-regressions`.

use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use proptest::prelude::*;
use server::fields::{json_to_table, table_to_json};
use server::ingest::decode::{decode, Incoming};
use time::OffsetDateTime;

fn leaf() -> impl Strategy<Value = AMQPValue> {
    prop_oneof![
        any::<bool>().prop_map(AMQPValue::Boolean),
        any::<i8>().prop_map(AMQPValue::ShortShortInt),
        any::<u8>().prop_map(AMQPValue::ShortShortUInt),
        any::<i16>().prop_map(AMQPValue::ShortInt),
        any::<u16>().prop_map(AMQPValue::ShortUInt),
        any::<i32>().prop_map(AMQPValue::LongInt),
        any::<u32>().prop_map(AMQPValue::LongUInt),
        any::<i64>().prop_map(AMQPValue::LongLongInt),
        any::<f32>().prop_map(AMQPValue::Float),
        any::<f64>().prop_map(AMQPValue::Double),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value })),
        "[a-z é]{0,40}".prop_map(|s| AMQPValue::ShortString(ShortString::from(s))),
        // Long strings are bytes on the wire: invalid UTF-8 included.
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| AMQPValue::LongString(LongString::from(b))),
        any::<u64>().prop_map(AMQPValue::Timestamp),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| AMQPValue::ByteArray(ByteArray::from(b))),
        Just(AMQPValue::Void),
    ]
}

fn value() -> impl Strategy<Value = AMQPValue> {
    leaf().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6)
                .prop_map(|v| AMQPValue::FieldArray(FieldArray::from(v))),
            proptest::collection::btree_map("[a-z-]{1,12}", inner, 0..6).prop_map(|m| {
                let mut t = FieldTable::default();
                for (k, v) in m {
                    t.insert(k.into(), v);
                }
                AMQPValue::FieldTable(t)
            }),
        ]
    })
}

/// Header names the parsers look at, so the generator hits them often.
const KNOWN: &[&str] = &[
    "x-death",
    "x-exception-message",
    "x-exception-stacktrace",
    "x-original-exchange",
    "x-original-routingKey",
    "x-first-death-exchange",
    "x-first-death-reason",
    "x-redrive-replay-id",
    "MT-Fault-Message",
    "MT-Fault-ExceptionType",
    "MT-Fault-StackTrace",
    "NServiceBus.ExceptionInfo.Message",
    "NServiceBus.ExceptionInfo.StackTrace",
    "NServiceBus.ExceptionInfo.ExceptionType",
];

fn headers() -> impl Strategy<Value = FieldTable> {
    let name = prop_oneof![
        proptest::sample::select(KNOWN).prop_map(str::to_owned),
        "[a-zA-Z.-]{1,20}"
    ];
    proptest::collection::btree_map(name, value(), 0..10).prop_map(|m| {
        let mut t = FieldTable::default();
        for (k, v) in m {
            t.insert(k.into(), v);
        }
        t
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// JSON is the stored form: reading it back and writing it again gives
    /// the same JSON, so a replay republishes what was captured.
    #[test]
    fn field_tables_survive_json(table in headers()) {
        let json = table_to_json(&table);
        let back = json_to_table(&json, "headers").expect("stored JSON is always valid input");
        prop_assert_eq!(table_to_json(&back), json);
    }

    #[test]
    fn decoding_never_panics_and_keeps_the_body(
        h in headers(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
        redelivered in any::<bool>(),
    ) {
        let incoming = Incoming {
            vhost: "v".into(),
            queue: "q.error.queue".into(),
            exchange: "error.direct".into(),
            routing_key: "q".into(),
            redelivered,
            properties: BasicProperties::default().with_headers(h),
            body: body.clone(),
        };
        let m = decode(incoming, OffsetDateTime::now_utc());
        prop_assert_eq!(m.body, body);
        prop_assert_eq!(m.group_id.len(), 16);
    }
}

#[test]
fn a_huge_trace_and_x_death_of_the_wrong_shape_decode() {
    let trace = "java.lang.IllegalStateException: boom\n".to_owned()
        + &"\tat com.acme.X.y(X.java:1)\n".repeat(200_000);
    let mut h = FieldTable::default();
    h.insert(
        "x-exception-stacktrace".into(),
        AMQPValue::LongString(trace.clone().into()),
    );
    h.insert(
        "x-death".into(),
        AMQPValue::FieldArray(vec![AMQPValue::LongLongInt(3), AMQPValue::Void].into()),
    );
    h.insert(
        "x-original-routingKey".into(),
        AMQPValue::LongString(vec![0xff, 0xfe].into()),
    );
    let m = decode(
        Incoming {
            vhost: "v".into(),
            queue: "q.dlq".into(),
            exchange: "".into(),
            routing_key: "q.dlq".into(),
            redelivered: false,
            properties: BasicProperties::default().with_headers(h),
            body: vec![0xc3],
        },
        OffsetDateTime::now_utc(),
    );
    assert_eq!(m.stack_trace.as_deref(), Some(trace.as_str()));
    assert_eq!(m.body, vec![0xc3]);
}
