//! The server's stages import one way only: this test reads the sources of every stage
//! folder and fails on an import that breaks a direction (see ARCHITECTURE.md,
//! "Architecture invariants"). Test code (`tests.rs` files and `#[cfg(test)]` modules)
//! may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each stage folder and the stages it may import.
const STAGES: &[(&str, &[&str])] = &[
    ("api", &["search", "detect", "store", "security"]),
    ("ingest", &["store", "security"]),
    ("detect", &["store"]),
    ("search", &["store"]),
    ("store", &[]),
    ("security", &[]),
];

/// Modules at the crate root that every stage may use: they import no stage.
const SHARED: &[&str] = &["clock", "error", "limits", "metrics"];

/// The composition root: wires the stages together, and no stage imports it.
const ROOT: &[&str] = &["cli", "config", "lib", "main"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without test modules and comments.
fn production_code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate-root modules a file names: `crate::x`, and `super::x` where `super` is the
/// crate root (in a stage's `mod.rs`).
fn imported_roots(code: &str, super_is_root: bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut prefixes = vec!["crate::"];
    if super_is_root {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        for (i, _) in code.match_indices(prefix) {
            let before = code[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &code[i + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
        // `use crate::{a, b}` groups.
        for (i, _) in code.match_indices(&format!("{prefix}{{")) {
            let rest = &code[i + prefix.len() + 1..];
            let group = &rest[..rest.find('}').unwrap_or(rest.len())];
            for part in group.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
    }
    found
}

/// Every import that breaks a direction, as "file imports stage".
fn violations(src: &Path) -> Vec<String> {
    let stages: BTreeMap<&str, &[&str]> = STAGES.iter().copied().collect();
    let mut out = Vec::new();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let stem = rel.file_stem().expect("name").to_string_lossy();
        if stem == "tests" || stem.ends_with("_tests") {
            continue;
        }
        let first = rel.components().next().expect("component");
        let first = first.as_os_str().to_string_lossy();
        let own = first.trim_end_matches(".rs").to_owned();
        let text = std::fs::read_to_string(&file).expect("read source");
        let in_stage = stages.contains_key(own.as_str()) && rel.components().count() > 1;
        let super_is_root = in_stage && rel.components().count() == 2 && rel.ends_with("mod.rs");
        let imports = imported_roots(&production_code(&text), super_is_root);
        for import in imports {
            if import == own {
                continue;
            }
            let ok = if in_stage {
                SHARED.contains(&import.as_str()) || stages[own.as_str()].contains(&import.as_str())
            } else if SHARED.contains(&own.as_str()) {
                // A shared module imports no stage and nothing of the root.
                false
            } else {
                // The composition root may use everything.
                ROOT.contains(&own.as_str())
            };
            if !ok {
                out.push(format!("{} imports crate::{import}", rel.display()));
            }
        }
    }
    out
}

#[test]
fn stages_import_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "imports against the stage directions (ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
}

#[test]
fn every_file_belongs_to_a_stage_shared_module_or_the_root() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let known = STAGES.iter().any(|(s, _)| *s == name)
            || SHARED.contains(&name.as_str())
            || ROOT.contains(&name.as_str());
        assert!(
            known,
            "{} is in no stage: add it to a stage folder",
            path.display()
        );
    }
}

/// The checker itself catches a wrong-way import, a grouped one and one through
/// `super` from a stage root, and ignores test code and comments.
#[test]
fn the_checker_sees_wrong_way_imports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    let write = |rel: &str, text: &str| {
        let path = src.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("store/mod.rs", "use super::search::x;\n");
    write(
        "store/writer.rs",
        "use crate::{clock, api};\n// crate::ingest in a comment\n",
    );
    write(
        "search/mod.rs",
        "use crate::store::Store;\n#[cfg(test)]\nmod t { use crate::api::x; }\n",
    );
    write("clock.rs", "use crate::store::x;\n");
    let mut found = violations(src);
    found.sort();
    assert_eq!(
        found,
        [
            "clock.rs imports crate::store",
            "store/mod.rs imports crate::search",
            "store/writer.rs imports crate::api",
        ]
    );
}
