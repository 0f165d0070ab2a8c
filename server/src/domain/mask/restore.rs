//! Edited replays under masking: the user edits what they were shown, and
//! every masked value they left as it was goes out as stored.

use std::collections::HashMap;

use serde_json::Value;

use super::json::{self, Seg, Visit};
use super::{Mask, MaskError, MASKED};

impl Mask {
    /// The body an edited replay sends: `edited` (what the user submitted,
    /// having been shown the body masked) with every masked value it left
    /// masked put back from `original`.
    pub fn restore_body(&self, original: &[u8], edited: &str) -> Result<String, MaskError> {
        let Some(masked) = self.body(original) else {
            return Ok(edited.to_owned());
        };
        let (Ok(text), Ok(masked)) = (std::str::from_utf8(original), String::from_utf8(masked)) else {
            return Ok(edited.to_owned());
        };
        if edited == masked {
            return Ok(text.to_owned());
        }
        match (
            serde_json::from_str::<Value>(text),
            serde_json::from_str::<Value>(&masked),
            serde_json::from_str::<Value>(edited),
        ) {
            (Ok(o), Ok(m), Ok(e)) => self.restore_json(text, &o, &m, edited, &e),
            // A JSON body edited into something else: only the text rules'
            // parts can be found again in it.
            _ => self.restore_text("the body", text, edited),
        }
    }

    /// `edited` with the text rules' masked parts of `original` back in
    /// place, in order.
    fn restore_text(&self, place: &str, original: &str, edited: &str) -> Result<String, MaskError> {
        let parts: Vec<&str> = self
            .spans(original)
            .into_iter()
            .map(|(s, e)| &original[s..e])
            .collect();
        let kept = edited.matches(MASKED).count();
        if kept == 0 {
            return Ok(edited.to_owned());
        }
        if kept != parts.len() {
            return Err(MaskError::Ambiguous {
                place: place.to_owned(),
                expected: parts.len(),
                kept,
            });
        }
        let mut out = String::with_capacity(edited.len());
        for (piece, part) in edited.split(MASKED).zip(parts.iter().map(Some).chain([None])) {
            out.push_str(piece);
            if let Some(part) = part {
                out.push_str(part);
            }
        }
        Ok(out)
    }

    fn restore_json(
        &self,
        text: &str,
        o: &Value,
        m: &Value,
        edited: &str,
        e: &Value,
    ) -> Result<String, MaskError> {
        let raw: HashMap<Vec<Seg>, (usize, usize)> = json::spans(text).into_iter().collect();
        let mut failure = None;
        let restored = json::rewrite(edited, &mut |path, _| {
            let (Some(ov), Some(mv), Some(ev)) = (json::get(o, path), json::get(m, path), json::get(e, path))
            else {
                return Visit::Keep;
            };
            if ov == mv {
                return Visit::Keep; // nothing masked here or below
            }
            if ev == mv {
                return match raw.get(path) {
                    Some(&(start, end)) => Visit::Replace(text[start..end].to_owned()),
                    None => Visit::Keep,
                };
            }
            match (ov, ev) {
                (Value::String(os), Value::String(es)) => match self.restore_text(&place(path), os, es) {
                    Ok(s) if &s == es => Visit::Keep,
                    Ok(s) => Visit::Replace(Value::String(s).to_string()),
                    Err(err) => {
                        failure.get_or_insert(err);
                        Visit::Keep
                    }
                },
                (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_)) => Visit::Descend,
                _ => Visit::Keep,
            }
        });
        match failure {
            Some(err) => Err(err),
            None => Ok(restored),
        }
    }

    /// The headers an edited replay sends: `edited` with every header the
    /// user left masked put back from `original` (both typed as stored;
    /// `reason` is the message's, as for [`Mask::headers`]).
    pub fn restore_headers(
        &self,
        original: &Value,
        edited: &Value,
        reason: Option<&str>,
    ) -> Result<Value, MaskError> {
        let (Some(masked), Value::Object(edited_map)) = (self.headers(original, reason), edited) else {
            return Ok(edited.clone());
        };
        let mut out = edited_map.clone();
        for (name, ev) in out.iter_mut() {
            let (Some(ov), Some(mv)) = (original.get(name), masked.get(name)) else {
                continue;
            };
            if ov == mv {
                continue;
            }
            if ev == mv {
                *ev = ov.clone();
            } else if let (Some(Value::String(os)), Some(Value::String(es))) =
                (ov.get("value"), ev.get("value"))
            {
                let restored = self.restore_text(&format!("header `{name}`"), os, es)?;
                ev["value"] = Value::String(restored);
            }
        }
        Ok(Value::Object(out))
    }
}

/// A value's place as a JSON path, for messages.
fn place(path: &[Seg]) -> String {
    let mut out = String::from("$");
    for seg in path {
        match seg {
            Seg::Key(k) => out.push_str(&format!("[{}]", Value::String(k.clone()))),
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}
