//! Pure presentation helpers, shared by SSR and the browser.

use serde_json::Value;

/// Pretty-printed JSON when the text parses as a JSON object or array.
pub fn pretty_json(text: &str) -> Option<String> {
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return None;
    }
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
}

/// A piece of pretty-printed JSON, for syntax colouring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonPart {
    /// Punctuation and whitespace; never two in a row (adjacent text nodes
    /// would merge in the browser and break hydration).
    Plain(String),
    Key(String),
    Str(String),
    Num(String),
    Lit(String),
}

/// Splits JSON text into coloured parts. Works on any text: it only
/// recognises strings, numbers and `true`/`false`/`null`.
pub fn json_parts(json: &str) -> Vec<JsonPart> {
    let chars: Vec<char> = json.chars().collect();
    let mut parts: Vec<JsonPart> = Vec::new();
    let mut plain = String::new();
    let flush = |plain: &mut String, parts: &mut Vec<JsonPart>| {
        if !plain.is_empty() {
            parts.push(JsonPart::Plain(std::mem::take(plain)));
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(chars.len());
            let text: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            flush(&mut plain, &mut parts);
            parts.push(if next == Some(&':') {
                JsonPart::Key(text)
            } else {
                JsonPart::Str(text)
            });
        } else if c == '-' || c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_digit() || "+-.eE".contains(chars[i])) {
                i += 1;
            }
            flush(&mut plain, &mut parts);
            parts.push(JsonPart::Num(chars[start..i].iter().collect()));
        } else if c.is_ascii_alphabetic() {
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if matches!(word.as_str(), "true" | "false" | "null") {
                flush(&mut plain, &mut parts);
                parts.push(JsonPart::Lit(word));
            } else {
                plain.push_str(&word);
            }
        } else {
            plain.push(c);
            i += 1;
        }
    }
    flush(&mut plain, &mut parts);
    parts
}

/// Classic 16-bytes-per-line hex dump with an ASCII column.
pub fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4 + 16);
    for (i, chunk) in bytes.chunks(16).enumerate() {
        out.push_str(&format!("{:08x}  ", i * 16));
        for j in 0..16 {
            match chunk.get(j) {
                Some(b) => out.push_str(&format!("{b:02x} ")),
                None => out.push_str("   "),
            }
            if j == 7 {
                out.push(' ');
            }
        }
        out.push(' ');
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    out
}

/// A typed header value (`{"type": "i64", "value": 3}`) as short text.
pub fn typed_value(v: &Value) -> String {
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("?");
    if let Some(b64) = v.get("base64").and_then(Value::as_str) {
        return format!("<{kind}, base64> {b64}");
    }
    match (kind, v.get("value")) {
        ("void", _) => "(void)".into(),
        (_, Some(Value::String(s))) => s.clone(),
        ("table", Some(Value::Object(m))) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}: {}", typed_value(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        ("array", Some(Value::Array(items))) => {
            let parts: Vec<String> = items.iter().map(typed_value).collect();
            format!("[{}]", parts.join(", "))
        }
        (_, Some(other)) => other.to_string(),
        (_, None) => String::new(),
    }
}

/// `2026-11-23T18:34:55.123Z` → `2026-11-23 18:34:55`.
pub fn short_time(rfc3339: &str) -> String {
    let s = rfc3339.replacen('T', " ", 1);
    s.get(..19).map(str::to_owned).unwrap_or(s)
}

/// Unix milliseconds → `2026-11-23 18:34:55` (UTC). Absolute, never "3 s
/// ago": server and browser clocks differ and hydration needs equal text.
pub fn ms_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Messages per second as the management UI shows them.
pub fn rate(r: f64) -> String {
    if r == 0.0 {
        "0".into()
    } else if r < 10.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.0}")
    }
}

/// `None` for an empty string. Views render text through this: an empty text
/// node does not exist in the server's HTML, so hydrating one would fail.
pub fn non_empty(s: impl Into<String>) -> Option<String> {
    let s = s.into();
    (!s.is_empty()).then_some(s)
}

/// The default exchange has an empty name; operators know it as "(default)".
pub fn exchange_label(name: &str) -> &str {
    if name.is_empty() {
        "(default)"
    } else {
        name
    }
}

/// A page's filters as a query string (`k=v&…`, empty values left out), with
/// a paging cursor last; shared by every page that keeps its filters in the URL.
pub fn query_string<'a>(
    filters: impl IntoIterator<Item = (&'a str, &'a Option<String>)>,
    cursor: Option<&str>,
) -> String {
    let mut parts: Vec<String> = filters
        .into_iter()
        .filter_map(|(k, v)| {
            v.as_ref()
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", url_encode(v)))
        })
        .collect();
    if let Some(c) = cursor {
        parts.push(format!("cursor={}", url_encode(c)));
    }
    parts.join("&")
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters kept).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn human_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn ms_time_is_utc_civil_time() {
        assert_eq!(super::ms_time(0), "1970-01-01 00:00:00");
        assert_eq!(super::ms_time(1_795_458_895_123), "2026-11-23 18:34:55");
        assert_eq!(super::ms_time(951_782_400_000), "2000-02-29 00:00:00");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_pretty_printed_only_when_it_is_json() {
        assert_eq!(pretty_json(r#"{"a":1}"#).unwrap(), "{\n  \"a\": 1\n}");
        assert!(pretty_json("plain text").is_none());
        assert!(pretty_json("{broken").is_none());
        assert!(pretty_json("42").is_none());
    }

    #[test]
    fn json_parts_colour_keys_strings_numbers_and_literals() {
        use JsonPart::*;
        let parts = json_parts("{\n  \"a\": \"x\\\"y\",\n  \"n\": -1.5e3,\n  \"ok\": null\n}");
        assert_eq!(
            parts,
            vec![
                Plain("{\n  ".into()),
                Key("\"a\"".into()),
                Plain(": ".into()),
                Str("\"x\\\"y\"".into()),
                Plain(",\n  ".into()),
                Key("\"n\"".into()),
                Plain(": ".into()),
                Num("-1.5e3".into()),
                Plain(",\n  ".into()),
                Key("\"ok\"".into()),
                Plain(": ".into()),
                Lit("null".into()),
                Plain("\n}".into()),
            ]
        );
        assert!(parts
            .windows(2)
            .all(|w| !matches!((&w[0], &w[1]), (Plain(_), Plain(_)))));
    }

    #[test]
    fn hex_dump_shows_offsets_bytes_and_ascii() {
        let d = hex_dump(&[0x00, 0x41, 0xff]);
        assert!(d.starts_with("00000000  00 41 ff "), "{d}");
        assert!(d.trim_end().ends_with(".A."), "{d}");
        assert_eq!(hex_dump(&[0; 17]).lines().count(), 2);
        assert_eq!(hex_dump(&[]), "");
    }

    #[test]
    fn typed_values_render_readably() {
        assert_eq!(typed_value(&json!({"type": "longstr", "value": "x"})), "x");
        assert_eq!(typed_value(&json!({"type": "i64", "value": 3})), "3");
        let t = json!({"type": "table", "value": {"count": {"type": "i64", "value": 1}}});
        assert_eq!(typed_value(&t), "{count: 1}");
        assert_eq!(
            typed_value(&json!({"type": "bytes", "base64": "AA=="})),
            "<bytes, base64> AA=="
        );
    }

    #[test]
    fn times_and_sizes() {
        assert_eq!(short_time("2026-11-23T18:34:55.123Z"), "2026-11-23 18:34:55");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(url_encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
