//! The layers of ARCHITECTURE.md held against the code: every `crate::` or `super::` path
//! in a file of `host/src` names a file of its own layer or a lower one, every module is in
//! the table, and no files import each other in a circle.

use crate::repo;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer of each top-level module, from the table under `## Layers`.
fn layers() -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let section = text.split("## Layers").nth(1).expect("a `## Layers` section");
    let mut layers = BTreeMap::new();
    for row in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(number) = cells.get(1).and_then(|c| c.split('.').next()?.parse::<usize>().ok()) else {
            continue;
        };
        for module in cells[2].split(',') {
            let name = module.trim().trim_matches('`').trim_end_matches('/');
            layers.insert(name.to_owned(), number);
        }
    }
    assert!(layers.len() > 10, "the layers table was not found: {layers:?}");
    layers
}

/// Every source file of the host, by its module path (`sandbox/state.rs` is `sandbox::state`).
fn files(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
        {
            if entry.is_dir() {
                dirs.push(entry);
                continue;
            }
            if entry.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = entry.strip_prefix(src).expect("under src");
            let mut path: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if path.last().is_some_and(|l| l == "mod") {
                path.pop();
            }
            if path == ["lib"] || path == ["main"] {
                continue;
            }
            out.insert(path, entry);
        }
    }
    out
}

/// The module paths one file names, `crate::a::b` and `super::c`, outside comments and
/// its tests (where `super` is the file itself).
fn imports(module: &[String], text: &str) -> BTreeSet<Vec<String>> {
    let parent = &module[..module.len() - 1];
    let mut out = BTreeSet::new();
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (prefix, base) in [("crate::", &[][..]), ("super::", parent)] {
            let mut rest = line;
            while let Some(at) = rest.find(prefix) {
                let before = rest[..at].chars().last();
                rest = &rest[at + prefix.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '$') {
                    continue;
                }
                let mut path = base.to_vec();
                for segment in rest.split("::") {
                    let ident: String = segment
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if ident.is_empty() || ident == "self" {
                        break;
                    }
                    let whole = ident.len() == segment.len();
                    path.push(ident);
                    if !whole {
                        break;
                    }
                }
                out.insert(path);
            }
        }
    }
    out
}

/// The file a module path resolves to: the longest prefix that is a file.
fn resolve<'a>(files: &'a BTreeMap<Vec<String>, PathBuf>, path: &[String]) -> Option<&'a Vec<String>> {
    (1..=path.len())
        .rev()
        .find_map(|n| files.get_key_value(&path[..n]).map(|(k, _)| k))
}

#[test]
fn the_host_has_the_layers_architecture_md_names_and_no_import_circle() {
    let src = repo().join("host/src");
    let layers = layers();
    let files = files(&src);
    let mut edges: BTreeMap<&Vec<String>, BTreeSet<&Vec<String>>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (module, path) in &files {
        let top = &module[0];
        let Some(&layer) = layers.get(top) else {
            panic!("`{top}` ({}) is in no layer of ARCHITECTURE.md's table", path.display());
        };
        let text = std::fs::read_to_string(path).expect("source");
        for import in imports(module, &text) {
            let Some(target) = resolve(&files, &import) else {
                continue;
            };
            if target == module {
                continue;
            }
            let target_layer = layers.get(&target[0]).copied().unwrap_or(usize::MAX);
            if target_layer > layer {
                wrong.push(format!(
                    "{} (layer {layer}) imports {} (layer {target_layer})",
                    module.join("::"),
                    target.join("::")
                ));
            }
            edges.entry(module).or_default().insert(target);
        }
    }
    assert!(wrong.is_empty(), "imports that run back up:\n{}", wrong.join("\n"));
    // A circle is a path back to where it started: a depth-first walk finds any.
    let mut done: BTreeSet<&Vec<String>> = BTreeSet::new();
    for start in files.keys() {
        let mut stack: Vec<(&Vec<String>, Vec<&Vec<String>>)> = vec![(start, Vec::new())];
        let mut on_path: Vec<&Vec<String>> = Vec::new();
        while let Some((node, children)) = stack.last_mut() {
            if on_path.last() != Some(node) {
                if done.contains(*node) {
                    stack.pop();
                    continue;
                }
                on_path.push(node);
                *children = edges
                    .get(*node)
                    .map(|e| e.iter().copied().collect())
                    .unwrap_or_default();
            }
            match children.pop() {
                Some(child) if on_path.contains(&child) => {
                    let from = on_path.iter().position(|n| *n == child).unwrap_or(0);
                    let circle: Vec<String> = on_path[from..].iter().map(|m| m.join("::")).collect();
                    panic!("import circle: {} → {}", circle.join(" → "), child.join("::"));
                }
                Some(child) => stack.push((child, Vec::new())),
                None => {
                    done.insert(node);
                    on_path.pop();
                    stack.pop();
                }
            }
        }
    }
    assert!(
        files.len() > 50 && edges.len() > 40,
        "too few files or imports read: {}",
        files.len()
    );
}
