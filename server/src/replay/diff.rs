//! A readable diff of an edited replay, for the message's history.

use serde_json::Value;

const MAX_LINES: usize = 400;
const MAX_SHOWN: usize = 40;

/// What changed between the stored message and the edited copy, or `None`.
pub fn describe(body: (&[u8], &[u8]), props: (&Value, &Value), headers: (&Value, &Value)) -> Option<String> {
    let mut out = Vec::new();
    if body.0 != body.1 {
        out.push("body:".to_owned());
        out.extend(body_diff(body.0, body.1));
    }
    for (name, (old, new)) in [("properties", props), ("headers", headers)] {
        let changes = key_diff(old, new);
        if !changes.is_empty() {
            out.push(format!("{name}:"));
            out.extend(changes);
        }
    }
    (!out.is_empty()).then(|| out.join("\n"))
}

fn body_diff(old: &[u8], new: &[u8]) -> Vec<String> {
    let (Ok(a), Ok(b)) = (std::str::from_utf8(old), std::str::from_utf8(new)) else {
        return vec![format!(
            "  binary body replaced ({} → {} bytes)",
            old.len(),
            new.len()
        )];
    };
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    if a.len() > MAX_LINES || b.len() > MAX_LINES {
        return vec![format!("  body replaced ({} → {} bytes)", old.len(), new.len())];
    }
    let mut lines = line_diff(&a, &b);
    if lines.len() > MAX_SHOWN {
        let more = lines.len() - MAX_SHOWN;
        lines.truncate(MAX_SHOWN);
        lines.push(format!("  … {more} more changed lines"));
    }
    lines
}

/// Changed lines only (`- old`, `+ new`), from a longest-common-subsequence walk.
fn line_diff(a: &[&str], b: &[&str]) -> Vec<String> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals before additions, as in a unified diff.
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}

fn key_diff(old: &Value, new: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (o, n) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let mut out = Vec::new();
    for (k, v) in n {
        match o.get(k) {
            None => out.push(format!("+ {k}: {v}")),
            Some(prev) if prev != v => out.push(format!("~ {k}: {prev} → {v}")),
            _ => {}
        }
    }
    out.extend(o.keys().filter(|k| !n.contains_key(*k)).map(|k| format!("- {k}")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unchanged_is_none() {
        let v = json!({"a": 1});
        assert_eq!(describe((b"x", b"x"), (&v, &v), (&v, &v)), None);
    }

    #[test]
    fn shows_changed_lines_and_keys() {
        let old = b"{\n  \"qty\": 1,\n  \"sku\": \"A\"\n}";
        let new = b"{\n  \"qty\": 2,\n  \"sku\": \"A\"\n}";
        let d = describe(
            (old, new),
            (
                &json!({"content_type": "application/json"}),
                &json!({"content_type": "application/json", "type": "T"}),
            ),
            (&json!({"x": 1, "gone": 2}), &json!({"x": 3})),
        )
        .unwrap();
        assert_eq!(
            d,
            "body:\n- \"qty\": 1,\n+ \"qty\": 2,\nproperties:\n+ type: \"T\"\nheaders:\n~ x: 1 → 3\n- gone"
                .replace("- \"qty\"", "-   \"qty\"")
                .replace("+ \"qty\"", "+   \"qty\"")
        );
        assert!(describe(
            (&[0xff], &[0xfe, 0]),
            (&json!({}), &json!({})),
            (&json!({}), &json!({}))
        )
        .unwrap()
        .contains("binary body replaced (1 → 2 bytes)"));
    }
}
