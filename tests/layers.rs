//! The source tree's layering is what `docs/design.md` draws: this test reads the layer diagram
//! from the doc, then every `crate::` path in `src/`, and fails when a module names a layer
//! above its own, names an item through the crate root's re-exports instead of a module path,
//! or when a folder of `src/` is missing from the diagram (or the diagram names one that does
//! not exist).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const DESIGN: &str = "docs/design.md";
/// Opens the fenced block of the diagram in `docs/design.md`.
const DIAGRAM_START: &str = "```text layers";

/// Layer names from the diagram, lowest first. Each line of the block starts with the names of
/// one layer (`log/`, or several on one line, `error.rs offset.rs`), top layer first; text
/// after two spaces is commentary.
fn diagram_layers(design: &str) -> Vec<Vec<String>> {
    let start = design
        .find(DIAGRAM_START)
        .unwrap_or_else(|| panic!("{DESIGN} has no `{DIAGRAM_START}` block"));
    let block = &design[start + DIAGRAM_START.len()..];
    let block = &block[..block.find("```").expect("the diagram block is closed")];
    let mut layers: Vec<Vec<String>> = block
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(' '))
        .map(|l| {
            let names = l.split("  ").next().unwrap();
            names
                .split_whitespace()
                .map(|n| n.trim_end_matches('/').trim_end_matches(".rs").to_owned())
                .collect()
        })
        .collect();
    layers.reverse();
    layers
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to: its folder, or its own stem.
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_str()
        .unwrap();
    first.trim_end_matches(".rs").to_owned()
}

/// Every `crate::name` in the code of `text` (comments and doc comments skipped).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // `crate::{A, B}` imports through the root: kept as `{`, never a layer name.
            found.push((
                n + 1,
                if name.is_empty() {
                    "{".to_owned()
                } else {
                    name
                },
            ));
            rest = after;
        }
    }
    found
}

#[test]
fn imports_follow_the_layer_diagram() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let design = fs::read_to_string(root.join(DESIGN)).unwrap();
    let layers = diagram_layers(&design);
    let rank: BTreeMap<String, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, names)| names.iter().map(move |n| (n.clone(), i)))
        .collect();
    assert!(rank.len() >= 8, "diagram too small: {layers:?}");

    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut tops: Vec<String> = files.iter().map(|f| top_module(&src, f)).collect();
    tops.sort();
    tops.dedup();
    tops.retain(|t| t != "lib");
    let mut listed: Vec<String> = rank.keys().cloned().collect();
    listed.sort();
    assert_eq!(
        tops, listed,
        "the diagram in {DESIGN} must name every module of src/"
    );

    let mut violations = Vec::new();
    for file in &files {
        let top = top_module(&src, file);
        if top == "lib" {
            continue;
        }
        let own = rank[&top];
        let text = fs::read_to_string(file).unwrap();
        for (line, name) in crate_paths(&text) {
            let shown = format!("{}:{line}: crate::{name}", file.display());
            match rank.get(&name) {
                Some(&r) if r <= own => {}
                Some(_) => violations.push(format!("{shown} is above `{top}`")),
                None => violations.push(format!("{shown} is not a module path")),
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_diagram_parser_sees_an_upward_import() {
    // The check above must be able to fail: a hand-made diagram and file prove it would.
    let layers = diagram_layers("```text layers\ntop/  a\nbottom/  b\n```");
    assert_eq!(
        layers,
        vec![vec!["bottom".to_owned()], vec!["top".to_owned()]]
    );
    let paths =
        crate_paths("use crate::top::X; // crate::ignored\n/// crate::doc\nuse crate::{A};");
    assert_eq!(
        paths,
        vec![(1, "top".to_owned()), (3, "{".to_owned())],
        "only code paths count"
    );
}

/// The one module allowed `unsafe` code: the memory maps.
const MMAP_MODULE: &str = "io/mmap.rs";

#[test]
fn unsafe_code_lives_only_in_the_mmap_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = fs::read_to_string(root.join("src/lib.rs")).unwrap();
    assert!(
        lib.contains("#![deny(unsafe_code)]"),
        "lib.rs must deny unsafe code"
    );
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut offenders = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let text = fs::read_to_string(&file).unwrap();
        let code: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let uses_unsafe = code.contains("unsafe ") || code.contains("allow(unsafe_code)");
        if uses_unsafe && rel != MMAP_MODULE {
            offenders.push(rel);
        }
    }
    assert!(
        offenders.is_empty(),
        "unsafe code outside {MMAP_MODULE}: {offenders:?}"
    );
}
