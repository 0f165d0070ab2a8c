use serde_json::{json, Value};

use super::*;

fn mask(spec: &str) -> Mask {
    Mask::parse(spec).unwrap()
}

fn shown(m: &Mask, body: &str) -> String {
    String::from_utf8(
        m.body(body.as_bytes())
            .unwrap_or_else(|| body.as_bytes().to_vec()),
    )
    .unwrap()
}

#[test]
fn the_setting_splits_at_rules_so_a_regex_may_hold_commas() {
    let m = mask(r"$.card.number, header:x-user-email,re:\b\d{13,19}\b, $..iban");
    assert_eq!(
        m.fingerprint(),
        "$.card.number\nheader:x-user-email\nre:\\b\\d{13,19}\\b\n$..iban"
    );
    assert!(Mask::parse("").unwrap().is_empty());
    for bad in ["card.number", "$.[", "re:(", "re:a*", "header:", "header:  "] {
        let err = Mask::parse(bad).unwrap_err().to_string();
        assert!(err.starts_with("REDRIVE_MASK: rule"), "{bad}: {err}");
    }
}

#[test]
fn a_json_body_keeps_its_text_but_the_masked_values() {
    let m = mask(r"$.card.number,$..iban,re:[\w.]+@[\w.]+");
    let body = "{\n  \"zeta\": 1,\n  \"card\": {\"number\": 4111111111111111, \"exp\": \"12/29\"},\n  \
                \"payouts\": [{\"iban\": \"DE89 3704\"}, {\"iban\": {\"a\": 1}}],\n  \"note\": \"mail bob@x.io, ann@y.io\"\n}";
    let out = shown(&m, body);
    assert_eq!(
        out,
        "{\n  \"zeta\": 1,\n  \"card\": {\"number\": \"••••\", \"exp\": \"12/29\"},\n  \
         \"payouts\": [{\"iban\": \"••••\"}, {\"iban\": \"••••\"}],\n  \"note\": \"mail ••••, ••••\"\n}"
    );
    serde_json::from_str::<Value>(&out).unwrap();
    // Nothing to mask: no copy.
    assert_eq!(m.body(br#"{"card": {"exp": "1"}}"#), None);
    assert_eq!(m.body(&[0xff, 0xfe]), None);
}

#[test]
fn text_rules_mask_text_bodies_numbers_and_merge_overlaps() {
    let m = mask(r"re:\b\d{13,19}\b,re:\d{4} \d{4}");
    assert_eq!(shown(&m, "card 4111111111111111 ok"), "card •••• ok");
    assert_eq!(
        shown(&m, r#"{"n": 4111111111111111, "s": "1234 5678 9"}"#),
        r#"{"n": "••••", "s": "•••• 9"}"#
    );
    assert_eq!(m.text("1234 5678123456789012345"), Some("••••".into()));
}

#[test]
fn headers_reason_and_trace() {
    let m = mask("header:X-User-Email,header:x-exception-message,re:secret-\\d+");
    let headers = json!({
        "x-user-email": {"type": "longstr", "value": "bob@x.io"},
        "nested": {"type": "table", "value": {"k": {"type": "longstr", "value": "secret-42"}}},
        "plain": {"type": "longstr", "value": "keep"},
    });
    let out = m.headers(&headers, None).unwrap();
    assert_eq!(out["x-user-email"], json!({"type": "longstr", "value": MASKED}));
    assert_eq!(out["nested"]["value"]["k"]["value"], json!(MASKED));
    assert_eq!(out["plain"], headers["plain"]);
    assert_eq!(m.reason("Order for bob failed").as_deref(), Some(MASKED));
    assert_eq!(m.reason("rejected"), None);
    assert_eq!(
        m.trace(
            "x.Boom: Order for bob failed\n\tat secret-7",
            Some("Order for bob failed")
        )
        .as_deref(),
        Some("x.Boom: ••••\n\tat ••••")
    );
    assert_eq!(
        mask("header:x-exception-stacktrace")
            .trace("at x", None)
            .as_deref(),
        Some(MASKED)
    );
    assert_eq!(mask("re:zzz").trace("at x", None), None);
}

#[test]
fn an_edit_gets_back_what_it_left_masked() {
    let m = mask(r"$.card.number,re:[\w.]+@[\w.]+");
    let original = r#"{"card": {"number": 4111111111111111}, "to": "bob@x.io and ann@y.io", "n": 1}"#;
    let masked = shown(&m, original);
    // Unchanged: the original bytes.
    assert_eq!(m.restore_body(original.as_bytes(), &masked).unwrap(), original);
    // Another field changed, reformatted: the masked values come back.
    let edited = masked.replace("\"n\": 1", "\"n\": 2").replace(", ", ",\n ");
    let restored = m.restore_body(original.as_bytes(), &edited).unwrap();
    let v: Value = serde_json::from_str(&restored).unwrap();
    assert_eq!(
        v,
        json!({"card": {"number": 4111111111111111_u64}, "to": "bob@x.io and ann@y.io", "n": 2})
    );
    // A value typed anew is sent as typed.
    let typed = masked
        .replace("\"••••\"", "5555")
        .replace("•••• and ••••", "new@z.io");
    let v: Value = serde_json::from_str(&m.restore_body(original.as_bytes(), &typed).unwrap()).unwrap();
    assert_eq!(v["card"]["number"], json!(5555));
    assert_eq!(v["to"], json!("new@z.io"));
    // Half of a value's masked parts kept: refused, not guessed.
    let half = masked.replace("•••• and ••••", "•••• and c@d.io");
    let err = m.restore_body(original.as_bytes(), &half).unwrap_err();
    assert!(err.to_string().contains("$[\"to\"] held 2"), "{err}");
    // A text body.
    let t = mask(r"re:\d{16}");
    assert_eq!(
        t.restore_body(b"pay 4111111111111111 now", "PAY •••• NOW")
            .unwrap(),
        "PAY 4111111111111111 NOW"
    );
}

#[test]
fn an_edit_gets_back_the_headers_it_left_masked() {
    let m = mask("header:x-user-email,re:secret-\\d+");
    let original = json!({
        "x-user-email": {"type": "longstr", "value": "bob@x.io"},
        "note": {"type": "longstr", "value": "see secret-42"},
    });
    let mut edited = m.headers(&original, None).unwrap();
    edited["added"] = json!({"type": "longstr", "value": "x"});
    let restored = m.restore_headers(&original, &edited, None).unwrap();
    assert_eq!(restored["x-user-email"], original["x-user-email"]);
    assert_eq!(restored["note"], original["note"]);
    assert_eq!(restored["added"], edited["added"]);
    edited["x-user-email"]["value"] = json!("new@x.io");
    assert_eq!(
        m.restore_headers(&original, &edited, None).unwrap()["x-user-email"]["value"],
        json!("new@x.io")
    );
}
