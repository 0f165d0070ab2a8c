//! The server's layers, checked: a module may import its own layer and the
//! ones below, never one above, and two modules of one layer never import
//! each other. `ARCHITECTURE.md` explains each layer; this test keeps the
//! table honest. A new violation fails the suite; so does an entry in
//! [`KNOWN`] that is no longer needed, so that list only shrinks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Bottom first. Every top-level module of the crate is in exactly one.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &["domain", "fields", "config", "retry", "supervise"],
    ),
    (
        "store and broker",
        &["store", "broker", "topology", "metrics", "lease", "instance"],
    ),
    (
        "capture, replay and monitor",
        &[
            "ingest",
            "replay",
            "jobs",
            "monitor",
            "policy",
            "retention",
            "export",
            "import",
        ],
    ),
    ("service", &["service"]),
    ("sign-in", &["auth"]),
    ("HTTP", &["state", "api", "http"]),
    ("commands", &["cli", "demo", "healthcheck"]),
];

/// Imports that break the rule today, as `(from, to)`: none. An entry here
/// needs a reason and an issue that removes it.
const KNOWN: &[(&str, &str)] = &[];

/// The crate's top-level modules each module names through `crate::`.
fn imports(sources: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let path = regex::Regex::new(r"crate::(\w+)").unwrap();
    let group = regex::Regex::new(r"crate::\{").unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in sources {
        let used = out.entry(module.clone()).or_default();
        used.extend(path.captures_iter(text).map(|c| c[1].to_owned()));
        for m in group.find_iter(text) {
            used.extend(group_heads(&text[m.end()..]));
        }
        used.remove(module);
    }
    out
}

/// The first identifier of each item in `a, b::c, d::{e, f}}…` (the text
/// after `crate::{`), up to the closing brace.
fn group_heads(rest: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let (mut depth, mut at_item) = (1, true);
    let mut ident = String::new();
    for c in rest.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 1 => at_item = true,
            _ => {}
        }
        if depth == 0 {
            break;
        }
        if at_item && (c.is_alphanumeric() || c == '_') {
            ident.push(c);
        } else if !ident.is_empty() {
            heads.push(std::mem::take(&mut ident));
            at_item = c == ',';
        }
    }
    heads
}

/// Imports that point up a layer, or both ways within one.
fn violations(imports: &BTreeMap<String, BTreeSet<String>>) -> Result<BTreeSet<(String, String)>, String> {
    let layer = |m: &str| LAYERS.iter().position(|(_, ms)| ms.contains(&m));
    let mut found = BTreeSet::new();
    for (from, tos) in imports {
        let Some(lf) = layer(from) else {
            return Err(format!(
                "module `{from}` is in no layer: add it to LAYERS and ARCHITECTURE.md"
            ));
        };
        for to in tos {
            let Some(lt) = layer(to) else { continue };
            let mutual = lt == lf && imports.get(to).is_some_and(|back| back.contains(from));
            if lt > lf || mutual {
                found.insert((from.clone(), to.clone()));
            }
        }
    }
    Ok(found)
}

/// Every `.rs` file under `src/`, keyed by its top-level module.
fn read_sources(src: &Path) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let first = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_owned();
            if module == "lib" || module == "main" || module == "layers" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.entry(module).or_default().push_str(&text);
        }
    }
    out
}

#[test]
fn no_layer_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&imports(&read_sources(&src))).unwrap();
    let known: BTreeSet<(String, String)> = KNOWN
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    let new: Vec<_> = found.difference(&known).collect();
    let gone: Vec<_> = known.difference(&found).collect();
    assert!(
        new.is_empty(),
        "imports against the layers (ARCHITECTURE.md), from → to: {new:?}"
    );
    assert!(gone.is_empty(), "fixed, so remove from KNOWN: {gone:?}");
}

#[test]
fn a_planted_upward_import_is_caught() {
    let sources = BTreeMap::from([
        (
            "store".to_owned(),
            "use crate::{fields::Field, http::AppState};".to_owned(),
        ),
        ("http".to_owned(), "use crate::store::Store;".to_owned()),
        ("ingest".to_owned(), "fn f() { crate::replay::go() }".to_owned()),
        ("replay".to_owned(), "use crate::ingest::x;".to_owned()),
    ]);
    let found = violations(&imports(&sources)).unwrap();
    let expected: BTreeSet<(String, String)> =
        [("store", "http"), ("ingest", "replay"), ("replay", "ingest")]
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
    assert_eq!(found, expected);
}

#[test]
fn a_module_outside_the_table_is_reported() {
    let sources = BTreeMap::from([("newthing".to_owned(), String::new())]);
    assert!(violations(&imports(&sources)).is_err());
}
