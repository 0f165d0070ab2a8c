//! Masking of personal data in what Redrive shows (`REDRIVE_MASK`).
//!
//! Failed messages carry customers' card numbers, e-mail addresses and
//! IBANs. A rule names what to hide: a JSON path into bodies
//! (`$.card.number`, `$..iban`), a header (`header:x-user-email`), or a
//! regular expression over text (`re:\b\d{13,19}\b`, applied to text
//! bodies, JSON strings and numbers, header text, the exception's message
//! and its stack trace). Each masked value reads [`MASKED`], and a JSON body
//! stays valid JSON with every other byte as published.
//!
//! Masking is for reading only: the store keeps, and replays send, the real
//! bytes. An edited replay puts back every masked value its editor left
//! masked ([`Mask::restore_body`], [`Mask::restore_headers`]).

mod json;
mod restore;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use regex::Regex;
use serde_json::Value;
use serde_json_path::JsonPath;

use self::json::{Seg, Visit};
use super::message::{DEATH_REASONS, REASON_HEADERS, TRACE_HEADERS};

/// What a masked value reads, everywhere.
pub const MASKED: &str = "••••";

/// `"••••"`: a masked value's JSON text.
const MASKED_JSON: &str = "\"••••\"";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    /// A rule of the setting cannot be used.
    #[error("REDRIVE_MASK: rule `{rule}`: {why}")]
    Rule { rule: String, why: String },
    /// An edit leaves some of a value's masked parts and not the others, so
    /// which real part goes where cannot be known.
    #[error(
        "{place} held {expected} masked value(s) (••••); the edit keeps {kept}: keep them all as they are, \
         or type the whole value anew"
    )]
    Ambiguous {
        place: String,
        expected: usize,
        kept: usize,
    },
}

/// The rules of `REDRIVE_MASK`, ready to apply. The default masks nothing.
#[derive(Debug, Clone, Default)]
pub struct Mask {
    /// The rules as configured, for the index to know when they change.
    sources: Vec<String>,
    paths: Vec<JsonPath>,
    /// Header names, matched without regard to ASCII case.
    headers: Vec<String>,
    texts: Vec<Regex>,
}

/// Where a rule starts: the setting is split at the commas before these,
/// so a regular expression may hold commas (`\d{13,19}`).
const STARTS: [&str; 3] = ["$", "header:", "re:"];

impl Mask {
    /// Parses the comma-separated rules of `REDRIVE_MASK`.
    pub fn parse(spec: &str) -> Result<Self, MaskError> {
        let mut mask = Mask::default();
        for rule in split(spec) {
            mask.add(rule)?;
        }
        Ok(mask)
    }

    fn add(&mut self, rule: &str) -> Result<(), MaskError> {
        let bad = |why: String| MaskError::Rule {
            rule: rule.to_owned(),
            why,
        };
        if let Some(name) = rule.strip_prefix("header:") {
            let name = name.trim();
            if name.is_empty() {
                return Err(bad("names no header".into()));
            }
            self.headers.push(name.to_owned());
        } else if let Some(pattern) = rule.strip_prefix("re:") {
            let re = regex::RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| bad(format!("not a regular expression: {e}")))?;
            if re.is_match("") {
                return Err(bad("matches empty text, which would mask nothing readable".into()));
            }
            self.texts.push(re);
        } else if rule.starts_with('$') {
            let path = JsonPath::parse(rule).map_err(|e| bad(format!("not a JSON path: {e}")))?;
            self.paths.push(path);
        } else {
            return Err(bad(
                "a rule is a JSON path ($…), header:<name> or re:<regex>".into()
            ));
        }
        self.sources.push(rule.to_owned());
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The rules as one text: what the search index was built with.
    pub fn fingerprint(&self) -> String {
        self.sources.join("\n")
    }

    fn masks_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    fn masks_any(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.masks_header(n))
    }

    /// Where the text rules match `text`: overlapping matches merged, in order.
    fn spans(&self, text: &str) -> Vec<(usize, usize)> {
        let mut spans: Vec<(usize, usize)> = self
            .texts
            .iter()
            .flat_map(|re| re.find_iter(text))
            .filter(|m| !m.is_empty())
            .map(|m| (m.start(), m.end()))
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// `text` with what the text rules match masked; `None` when they match nothing.
    pub fn text(&self, text: &str) -> Option<String> {
        let spans = self.spans(text);
        if spans.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in spans {
            out.push_str(&text[at..start]);
            out.push_str(MASKED);
            at = end;
        }
        out.push_str(&text[at..]);
        Some(out)
    }

    /// The exception's message as shown: wholly masked when a rule names a
    /// header it is read from (a broker's dead-letter reason such as
    /// `rejected` is no one's data and stays), else through the text rules.
    pub fn reason(&self, reason: &str) -> Option<String> {
        if self.masks_any(&REASON_HEADERS) && !DEATH_REASONS.contains(&reason) {
            return Some(MASKED.to_owned());
        }
        self.text(reason)
    }

    /// The stack trace as shown. A trace prints its exception's message, so
    /// a masked message is masked in the trace as well.
    pub fn trace(&self, trace: &str, reason: Option<&str>) -> Option<String> {
        if self.masks_any(&TRACE_HEADERS) {
            return Some(MASKED.to_owned());
        }
        let mut shown = Cow::Borrowed(trace);
        if let Some(r) = reason.filter(|r| !r.is_empty() && self.reason(r).as_deref() == Some(MASKED)) {
            if trace.contains(r) {
                shown = Cow::Owned(trace.replace(r, MASKED));
            }
        }
        match (self.text(&shown), shown) {
            (Some(masked), _) => Some(masked),
            (None, Cow::Owned(masked)) => Some(masked),
            (None, Cow::Borrowed(_)) => None,
        }
    }

    /// The headers (typed as stored: `{"name": {"type": …, "value": …}}`)
    /// as shown; `None` when nothing in them is masked. `reason` is the
    /// message's, which a trace header prints.
    pub fn headers(&self, headers: &Value, reason: Option<&str>) -> Option<Value> {
        let Value::Object(map) = headers else {
            return None;
        };
        if self.is_empty() {
            return None;
        }
        let mut out = map.clone();
        let mut changed = false;
        for (name, typed) in out.iter_mut() {
            if self.masks_header(name) {
                *typed = serde_json::json!({"type": "longstr", "value": MASKED});
                changed = true;
            } else if TRACE_HEADERS.iter().any(|t| t.eq_ignore_ascii_case(name)) {
                if let Some(Value::String(trace)) = typed.get_mut("value") {
                    if let Some(masked) = self.trace(trace, reason) {
                        *trace = masked;
                        changed = true;
                    }
                }
            } else {
                changed |= self.value_texts(typed);
            }
        }
        changed.then_some(Value::Object(out))
    }

    /// Masks a message as a user reads it, in place; whether anything was.
    pub fn apply(&self, m: Shown<'_>) -> bool {
        if self.is_empty() {
            return false;
        }
        let reason = m.reason.clone();
        let mut changed = false;
        if let Some(trace) = m
            .stack_trace
            .as_deref()
            .and_then(|t| self.trace(t, reason.as_deref()))
        {
            *m.stack_trace = Some(trace);
            changed = true;
        }
        if let Some(headers) = self.headers(m.headers, reason.as_deref()) {
            *m.headers = headers;
            changed = true;
        }
        if let Some(r) = reason.as_deref().and_then(|r| self.reason(r)) {
            *m.reason = Some(r);
            changed = true;
        }
        if let Some(body) = self.body(m.body) {
            *m.body = body;
            changed = true;
        }
        changed
    }

    /// Masks the text rules' matches in every string inside `value`.
    fn value_texts(&self, value: &mut Value) -> bool {
        match value {
            Value::String(s) => match self.text(s) {
                Some(masked) => {
                    *s = masked;
                    true
                }
                None => false,
            },
            Value::Array(items) => items.iter_mut().fold(false, |c, v| self.value_texts(v) | c),
            Value::Object(map) => map.values_mut().fold(false, |c, v| self.value_texts(v) | c),
            _ => false,
        }
    }

    /// The body as shown; `None` when nothing in it is masked. A JSON body
    /// is masked value by value, a text body by the text rules; a body that
    /// is not text is left as it is (no rule reads bytes).
    pub fn body(&self, body: &[u8]) -> Option<Vec<u8>> {
        if self.is_empty() {
            return None;
        }
        let text = std::str::from_utf8(body).ok()?;
        let masked = match serde_json::from_str::<Value>(text) {
            Ok(value) => self.json(text, &value),
            Err(_) => self.text(text)?,
        };
        (masked.as_bytes() != body).then(|| masked.into_bytes())
    }

    /// A JSON body's text with its masked values replaced.
    fn json(&self, text: &str, value: &Value) -> String {
        let targets: Vec<Vec<Seg>> = self
            .paths
            .iter()
            .flat_map(|p| p.query_located(value).locations().map(segs).collect::<Vec<_>>())
            .collect();
        json::rewrite(text, &mut |path, raw| {
            if targets.iter().any(|t| t == path) {
                return Visit::Replace(MASKED_JSON.to_owned());
            }
            match raw.as_bytes().first() {
                Some(b'{' | b'[') => Visit::Descend,
                Some(b'"') => {
                    let s: String = serde_json::from_str(raw).unwrap_or_default();
                    match self.text(&s) {
                        Some(masked) => Visit::Replace(Value::String(masked).to_string()),
                        None => Visit::Keep,
                    }
                }
                // A number the text rules match (a card number sent as a
                // number) is masked whole: part of one would not be JSON.
                Some(b'-' | b'0'..=b'9') if !self.spans(raw).is_empty() => {
                    Visit::Replace(MASKED_JSON.to_owned())
                }
                _ => Visit::Keep,
            }
        })
    }
}

/// The parts of a message a user reads, for [`Mask::apply`].
pub struct Shown<'a> {
    pub body: &'a mut Vec<u8>,
    /// Typed as stored, the trace in place.
    pub headers: &'a mut Value,
    pub reason: &'a mut Option<String>,
    pub stack_trace: &'a mut Option<String>,
}

/// The rules of the setting: split at each comma that a rule's start follows.
fn split(spec: &str) -> Vec<&str> {
    let mut rules = Vec::new();
    let mut from = 0;
    for (i, _) in spec.match_indices(',') {
        let rest = spec[i + 1..].trim_start();
        if STARTS.iter().any(|s| rest.starts_with(s)) {
            rules.push(&spec[from..i]);
            from = i + 1;
        }
    }
    rules.push(&spec[from..]);
    rules
        .into_iter()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect()
}

fn segs(path: &serde_json_path::NormalizedPath<'_>) -> Vec<Seg> {
    path.iter()
        .map(|e| match e {
            serde_json_path::PathElement::Name(n) => Seg::Key((*n).to_owned()),
            serde_json_path::PathElement::Index(i) => Seg::Index(*i),
        })
        .collect()
}
