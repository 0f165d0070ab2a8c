//! `redrive-bindgen INPUT.wasm OUT_DIR NAME [--keep-names]`: what
//! `wasm-bindgen --target web --no-typescript [--remove-name-section]
//! --out-dir OUT_DIR --out-name NAME INPUT.wasm` does, for `scripts/build-site`.
//!
//! Why not the `wasm-bindgen-cli` binary: installing it compiled an HTTP
//! server, an HTTP client and a test runner that the UI build never uses,
//! and took three of a newcomer's first-run minutes; the library is pinned
//! in `Cargo.lock` beside the `wasm-bindgen` crate it must equal.

use anyhow::{bail, Context, Result};
use wasm_bindgen_cli_support::Bindgen;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let keep_names = args.iter().any(|a| a == "--keep-names");
    if let Some(flag) = args.iter().find(|a| a.starts_with("--") && *a != "--keep-names") {
        bail!("unknown option {flag}: usage: redrive-bindgen INPUT.wasm OUT_DIR NAME [--keep-names]");
    }
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [input, out_dir, name] = positional.as_slice() else {
        bail!("usage: redrive-bindgen INPUT.wasm OUT_DIR NAME [--keep-names]");
    };
    let mut bindgen = Bindgen::new();
    bindgen
        .input_path(input.as_str())
        .web(true)?
        .typescript(false)
        // Function names were 3.5 MB of a 5.9 MB release wasm; development
        // builds keep them for readable stack traces.
        .remove_name_section(!keep_names)
        .out_name(name);
    bindgen
        .generate(out_dir.as_str())
        .with_context(|| format!("generating the JS glue for {input} into {out_dir}"))
}
