//! The layering stated in ARCHITECTURE.md, held against the code: every `crate::` path in
//! `src/` names a module of the same or a lower layer, and no source file grows past the
//! size where it hides its rooms. Reads the files as text; no dependency needed.

use std::path::{Path, PathBuf};

/// The broker crate's top-level modules, lowest layer first. A module may use its own
/// layer's modules listed before it, and every module of the layers below.
const LAYERS: &[&[&str]] = &[
    &["fatal", "os", "rt", "protocol", "stats", "test_alloc"],
    &["compression", "producer"],
    &["config", "security"],
    &["storage"],
    &["group", "cluster", "replication", "txn"],
    &["shard"],
    &["server"],
    &["broker"],
];

/// The most lines a source file may have.
const FILE_LINES_MAX: usize = 600;

/// (layer, position within it) of a top-level module.
fn rank(module: &str) -> Option<(usize, usize)> {
    LAYERS.iter().enumerate().find_map(|(layer, names)| {
        names
            .iter()
            .position(|n| *n == module)
            .map(|pos| (layer, pos))
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for lib.rs and main.rs).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// Every module named right after `crate::` in `text` (in `use` lines and inline paths).
fn crate_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name == "{" || name.is_empty() {
                // `use crate::{a, b}`: every name in the braces.
                if let Some(inner) = after.strip_prefix('{') {
                    let inner = inner.split('}').next().unwrap_or("");
                    for part in inner.split(',') {
                        let n: String = part
                            .trim()
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !n.is_empty() {
                            out.push(n);
                        }
                    }
                }
            } else {
                out.push(name);
            }
            rest = after;
        }
    }
    out
}

#[test]
fn lower_layers_never_use_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let Some(mine) = rank(&module) else {
            wrong.push(format!(
                "{}: module {module} is in no layer",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        for used in crate_paths(&text) {
            if used == module {
                continue;
            }
            match rank(&used) {
                None => wrong.push(format!(
                    "{}: uses crate::{used}, in no layer",
                    file.display()
                )),
                Some(theirs) if theirs > mine => wrong.push(format!(
                    "{}: {module} (layer {}) uses {used} (layer {})",
                    file.display(),
                    mine.0,
                    theirs.0
                )),
                Some(_) => {}
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_a_violation() {
    // A lower layer naming a higher one, in both spellings, is found.
    let uses =
        crate_paths("use crate::server::x;\nlet a = crate::shard::y(); use crate::{group, os};");
    assert_eq!(uses, vec!["server", "shard", "group", "os"]);
    assert!(rank("storage") < rank("server"));
    assert!(
        rank("compression") < rank("config"),
        "config uses compression"
    );
}

#[test]
fn no_source_file_is_larger_than_its_rooms_allow() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("bench").join("src"), &mut files);
    rust_files(&root.join("powercut").join("src"), &mut files);
    let mut large: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).ok()?.lines().count();
            (n > FILE_LINES_MAX).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    large.sort();
    assert!(
        large.is_empty(),
        "files over {FILE_LINES_MAX} lines:\n{}",
        large.join("\n")
    );
}
