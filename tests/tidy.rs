//! Tidy: the source tree held to the rules of docs/architecture.md, read from `src/` as text.
//!
//! - Every top-level module has a layer in [`LAYERS`], and imports only from its own layer or
//!   below; no two top-level modules import each other, directly or through others.
//! - Every source file opens with a `//!` header saying what it owns.
//! - No source file is longer than [`MAX_LINES`] before its `#[cfg(test)]` part.
//! - Docs and comments describe the software, not how it was written: no [`HISTORY_PHRASES`].

// A test crate: panicking on an unexpected `Err` is how a test (or its helpers) fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// The layers, bottom first. A module may import from its layer and the layers below.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundations",
        &[
            "ids",
            "rooms",
            "config",
            "error",
            "event",
            "metrics",
            "telemetry",
            "shutdown",
        ],
    ),
    (
        "identities and the event log",
        &["auth", "history", "limits"],
    ),
    ("pipeline", &["pipeline", "recovery"]),
    ("cluster", &["cluster"]),
    ("services", &["chat"]),
    ("doors", &["socketio", "cells"]),
    ("edge", &["edge"]),
    ("http API", &["http"]),
    ("wiring", &["drain", "server", "doctor"]),
];

/// Most lines of a source file before its `#[cfg(test)]` part.
const MAX_LINES: usize = 500;

/// Words about how code was written, which docs and comments must not carry.
const HISTORY_PHRASES: &[&str] = &[
    "in this session",
    "during this session",
    "tried this session",
    "earlier session",
    "last session",
    "next session",
    "once they land",
    "once it lands",
    "issue 1",
    "issue 2",
    "issue 3",
    "issue 4",
    "issue 5",
    "issue 6",
    "issue 7",
    "issue 8",
    "issue 9",
    "issue #",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The top-level module a file belongs to (`None` for lib.rs and main.rs).
fn top_module(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src()).expect("under src");
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_owned())
}

/// The code of a file before its tests, without comment lines.
fn code(text: &str) -> String {
    let before_tests = text.split("#[cfg(test)]").next().unwrap_or_default();
    before_tests
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a piece of code names through `crate::` (paths and `use` groups).
fn crate_modules(code: &str, known: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::x, b, c::{y, z}}`: the first name of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ if item_start && !name.is_empty() => {
                        found.insert(std::mem::take(&mut name));
                        item_start = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                found.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found.retain(|name| known.contains(name.as_str()));
    found
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// (from, to) for every import of a top-level module from another, over `src/`.
fn imports() -> BTreeSet<(String, String)> {
    let files = rust_files(&src());
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(f)).collect();
    let known: BTreeSet<&str> = modules.iter().map(String::as_str).collect();
    let mut edges = BTreeSet::new();
    for file in &files {
        let Some(from) = top_module(file) else {
            continue;
        };
        let text = fs::read_to_string(file).expect("read source");
        for to in crate_modules(&code(&text), &known) {
            if to != from {
                edges.insert((from.clone(), to));
            }
        }
    }
    edges
}

#[test]
fn every_top_level_module_has_a_layer() {
    let missing: Vec<String> = rust_files(&src())
        .iter()
        .filter_map(|f| top_module(f))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|module| layer_of(module).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "top-level modules missing from the layer table (tests/tidy.rs LAYERS and \
         docs/architecture.md): {missing:?}"
    );
}

#[test]
fn imports_go_only_down_the_layers() {
    let mut upward = BTreeMap::new();
    for (from, to) in imports() {
        let (Some(low), Some(high)) = (layer_of(&from), layer_of(&to)) else {
            continue;
        };
        if high > low {
            upward.insert((from, to), (LAYERS[low].0, LAYERS[high].0));
        }
    }
    let upward: Vec<String> = upward
        .iter()
        .map(|((from, to), (low, high))| format!("{from} ({low}) imports {to} ({high})"))
        .collect();
    assert!(
        upward.is_empty(),
        "imports that go up a layer: {upward:#?}\nimport from below, or move the code down"
    );
}

#[test]
fn no_top_level_modules_import_each_other_in_a_cycle() {
    let edges = imports();
    let mut cycles = BTreeSet::new();
    // From each module, a depth-first walk that comes back to it is a cycle (a module
    // graph of some twenty nodes: no need for anything cleverer).
    for (start, _) in &edges {
        let mut stack: Vec<Vec<&String>> = vec![vec![start]];
        while let Some(path) = stack.pop() {
            let last = path[path.len() - 1];
            for (_, next) in edges.iter().filter(|(from, _)| from == last) {
                if next == start {
                    let mut cycle: Vec<&str> = path.iter().map(|m| m.as_str()).collect();
                    cycle.push(next);
                    cycles.insert(cycle.join(" -> "));
                } else if !path.contains(&next) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push(longer);
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "top-level modules that import each other (within a layer too): {cycles:#?}"
    );
}

#[test]
fn every_source_file_has_a_module_header() {
    let bare: Vec<String> = rust_files(&src())
        .into_iter()
        .filter(|file| {
            let text = fs::read_to_string(file).expect("read source");
            !text.trim_start().starts_with("//!")
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(bare.is_empty(), "files without a `//!` header: {bare:#?}");
}

#[test]
fn no_source_file_is_over_the_line_limit_before_its_tests() {
    let long: Vec<String> = rust_files(&src())
        .into_iter()
        .filter_map(|file| {
            let text = fs::read_to_string(&file).expect("read source");
            let lines = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .lines()
                .count();
            (lines > MAX_LINES).then(|| format!("{}: {lines} lines", file.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines before their tests (split by concern): {long:#?}"
    );
}

#[test]
fn docs_and_comments_describe_the_software_not_its_history() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = rust_files(&src());
    files.extend(rust_files(&root.join("tests")));
    files.push(root.join("README.md"));
    for entry in fs::read_dir(root.join("docs")).expect("read docs") {
        files.push(entry.expect("dir entry").path());
    }
    let mut found = Vec::new();
    for file in files {
        // This file names the phrases it looks for.
        if file.ends_with("tests/tidy.rs") {
            continue;
        }
        let text = fs::read_to_string(&file).expect("read file").to_lowercase();
        for (n, line) in text.lines().enumerate() {
            for phrase in HISTORY_PHRASES {
                if line.contains(phrase) {
                    found.push(format!("{}:{}: {phrase}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "words about how the code was written: {found:#?}"
    );
}

#[test]
fn the_import_reader_sees_paths_and_groups() {
    let known: BTreeSet<&str> = ["ids", "rooms", "history", "pipeline"].into();
    let code = "use crate::{\n    history::{Position, Epoch},\n    ids::WorkspaceId,\n    rooms,\n};\n\
                fn f() { crate::pipeline::x(); }";
    let found = crate_modules(code, &known);
    assert_eq!(
        found,
        ["history", "ids", "pipeline", "rooms"]
            .map(String::from)
            .into()
    );
}
