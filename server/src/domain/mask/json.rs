//! A walk over JSON *text* that rewrites chosen values in place.
//!
//! Masking a body through `serde_json::Value` would print it again: keys
//! sorted, spacing lost. An operator comparing the body with what the
//! service logged, or editing it for a replay, needs it as it was
//! published, so values are replaced where they stand and every other byte
//! is kept.

use serde_json::Value;

/// One step from a JSON document's root to a value in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// The value at `path` in `value`.
pub(super) fn get<'v>(value: &'v Value, path: &[Seg]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, seg| match seg {
        Seg::Key(k) => v.get(k.as_str()),
        Seg::Index(i) => v.get(*i),
    })
}

/// What the visitor wants done with the value it is shown.
pub(super) enum Visit {
    /// Look inside it (for an object or an array; a leaf is left alone).
    Descend,
    /// Leave it, and whatever it holds, as it is.
    Keep,
    /// Put this JSON text in its place.
    Replace(String),
}

/// `text` (valid JSON: callers parse it first) with the values `visit`
/// replaces, each shown with its path and its text.
pub(super) fn rewrite(text: &str, visit: &mut impl FnMut(&[Seg], &str) -> Visit) -> String {
    let mut walk = Walk {
        b: text.as_bytes(),
        i: 0,
        edits: Vec::new(),
    };
    walk.value(&mut Vec::new(), &mut |path, start, end| {
        visit(path, &text[start..end])
    });
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, with) in walk.edits {
        out.push_str(&text[at..start]);
        out.push_str(&with);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// Every value's path and its span in `text` (valid JSON).
pub(super) fn spans(text: &str) -> Vec<(Vec<Seg>, (usize, usize))> {
    let mut found = Vec::new();
    let mut walk = Walk {
        b: text.as_bytes(),
        i: 0,
        edits: Vec::new(),
    };
    walk.value(&mut Vec::new(), &mut |path, start, end| {
        found.push((path.to_vec(), (start, end)));
        Visit::Descend
    });
    found
}

struct Walk<'a> {
    b: &'a [u8],
    i: usize,
    edits: Vec<(usize, usize, String)>,
}

impl Walk<'_> {
    fn peek(&self) -> u8 {
        self.b.get(self.i).copied().unwrap_or(0)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }

    /// From an opening quote to just past its closing one.
    fn string(&mut self) {
        self.i += 1;
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return;
                }
                _ => self.i += 1,
            }
        }
    }

    /// Past the value that starts here.
    fn skip(&mut self) {
        match self.peek() {
            b'"' => self.string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                while self.i < self.b.len() {
                    match self.b[self.i] {
                        b'"' => {
                            self.string();
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return;
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                while self.i < self.b.len()
                    && !matches!(self.b[self.i], b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t')
                {
                    self.i += 1;
                }
            }
        }
    }

    fn value(&mut self, path: &mut Vec<Seg>, visit: &mut impl FnMut(&[Seg], usize, usize) -> Visit) {
        self.ws();
        let start = self.i;
        self.skip();
        let end = self.i;
        match visit(path, start, end) {
            Visit::Keep => {}
            Visit::Replace(with) => self.edits.push((start, end, with)),
            Visit::Descend => {
                self.i = start;
                match self.peek() {
                    b'{' => self.object(path, visit),
                    b'[' => self.array(path, visit),
                    _ => {}
                }
                self.i = end;
            }
        }
    }

    fn object(&mut self, path: &mut Vec<Seg>, visit: &mut impl FnMut(&[Seg], usize, usize) -> Visit) {
        self.i += 1;
        loop {
            self.ws();
            if self.peek() != b'"' {
                return;
            }
            let key_start = self.i;
            self.string();
            // Valid JSON (checked by the caller): the key reads back.
            let key: String = serde_json::from_slice(&self.b[key_start..self.i]).unwrap_or_default();
            self.ws();
            self.i += 1; // ':'
            path.push(Seg::Key(key));
            self.value(path, visit);
            path.pop();
            self.ws();
            if self.peek() != b',' {
                return;
            }
            self.i += 1;
        }
    }

    fn array(&mut self, path: &mut Vec<Seg>, visit: &mut impl FnMut(&[Seg], usize, usize) -> Visit) {
        self.i += 1;
        self.ws();
        if self.peek() == b']' {
            return;
        }
        for index in 0.. {
            path.push(Seg::Index(index));
            self.value(path, visit);
            path.pop();
            self.ws();
            if self.peek() != b',' {
                return;
            }
            self.i += 1;
        }
    }
}
