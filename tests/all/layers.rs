//! The layers of ARCHITECTURE.md held against the code. Each layer lives in a crate, so the
//! compiler already refuses an import of a crate the importer does not depend on; this test
//! holds what it cannot: that each crate depends only on crates of lower layers, that the
//! layers sharing a crate import downwards only (every `crate::`, `super::` and `tta_*::`
//! path names a file of its own layer or a lower one), that every module is in the table,
//! and that no files import each other in a circle.

use crate::repo;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A file of the host: its crate and its module path inside it (`sandbox/state.rs` of
/// `tta-runtime` is `("tta-runtime", ["sandbox", "state"])`; a `lib.rs` is the empty path).
type Module = (String, Vec<String>);

/// The table under `## Layers`: for each crate, the layer of the whole crate (`the crate`)
/// or of each of its top-level modules.
#[derive(Default)]
struct Layers {
    whole: BTreeMap<String, usize>,
    modules: BTreeMap<String, BTreeMap<String, usize>>,
}

impl Layers {
    fn read() -> Layers {
        let text = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
        let section = text.split("## Layers").nth(1).expect("a `## Layers` section");
        let mut layers = Layers::default();
        for row in section.lines().take_while(|l| !l.starts_with("## ")) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let Some(number) = cells.get(1).and_then(|c| c.split('.').next()?.parse::<usize>().ok()) else {
                continue;
            };
            let krate = cells[2].trim_matches('`').to_owned();
            if cells[3] == "the crate" {
                layers.whole.insert(krate, number);
                continue;
            }
            for module in cells[3].split(',') {
                let name = module.trim().trim_matches('`').trim_end_matches('/');
                layers
                    .modules
                    .entry(krate.clone())
                    .or_default()
                    .insert(name.to_owned(), number);
            }
        }
        assert!(
            layers.whole.len() + layers.modules.len() >= 6,
            "the layers table was not found"
        );
        layers
    }

    /// The layer of a file; a `lib.rs` that only declares a crate's modules counts as the
    /// highest of them, since what it re-exports may come from any.
    fn of(&self, (krate, path): &Module) -> Option<usize> {
        if let Some(&layer) = self.whole.get(krate) {
            return Some(layer);
        }
        let modules = self.modules.get(krate)?;
        match path.first() {
            Some(top) => modules.get(top).copied(),
            None => modules.values().max().copied(),
        }
    }

    /// The lowest and highest layer a crate holds.
    fn range(&self, krate: &str) -> Option<(usize, usize)> {
        if let Some(&layer) = self.whole.get(krate) {
            return Some((layer, layer));
        }
        let layers = self.modules.get(krate)?.values();
        Some((*layers.clone().min()?, *layers.max()?))
    }
}

/// The host's crates: name → directory (`crates/*` and the front in `host/`).
fn crates() -> BTreeMap<String, PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo().join("crates"))
        .expect("crates/")
        .map(|e| e.expect("entry").path())
        .collect();
    dirs.push(repo().join("host"));
    dirs.into_iter().map(|dir| (manifest(&dir).0, dir)).collect()
}

/// A crate's name and the host crates it depends on (not its dev-dependencies).
fn manifest(dir: &Path) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
    let mut name = None;
    let mut deps = Vec::new();
    let mut section = "";
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[package]" && line.starts_with("name") && name.is_none() {
            name = line.split('"').nth(1).map(str::to_owned);
        } else if section == "[dependencies]" && line.starts_with("tta-") {
            deps.extend(line.split(['.', ' ', '=']).next().map(str::to_owned));
        }
    }
    (name.expect("a package name"), deps)
}

/// Every source file of one crate, by its module path.
fn files(krate: &str, src: &Path) -> BTreeMap<Module, PathBuf> {
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
            if path == ["main"] {
                continue;
            }
            if path.last().is_some_and(|l| l == "mod" || l == "lib") {
                path.pop();
            }
            out.insert((krate.to_owned(), path), entry);
        }
    }
    out
}

/// The module paths one file names — `crate::a::b`, `super::c` and `tta_x::d` — outside
/// comments and its tests (where `super` is the file itself).
fn imports((krate, module): &Module, text: &str) -> BTreeSet<Module> {
    let parent = &module[..module.len().saturating_sub(1)];
    let mut out = BTreeSet::new();
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for prefix in ["crate::", "super::", "tta_"] {
            let mut rest = line;
            while let Some(at) = rest.find(prefix) {
                let before = rest[..at].chars().last();
                rest = &rest[at + prefix.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '$') {
                    continue;
                }
                let (target, tail) = match prefix {
                    "crate::" => (krate.clone(), rest),
                    "super::" => (krate.clone(), rest),
                    _ => {
                        let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase()).collect();
                        let Some(tail) = rest[name.len()..].strip_prefix("::") else {
                            if rest[name.len()..].starts_with(" as ") || rest[name.len()..].starts_with(';') {
                                out.insert((format!("tta-{name}"), Vec::new()));
                            }
                            continue;
                        };
                        (format!("tta-{name}"), tail)
                    }
                };
                let mut path = if prefix == "super::" {
                    parent.to_vec()
                } else {
                    Vec::new()
                };
                for segment in tail.split("::") {
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
                out.insert((target, path));
            }
        }
    }
    out
}

/// The file a module path resolves to: the longest prefix that is a file.
fn resolve<'a>(files: &'a BTreeMap<Module, PathBuf>, (krate, path): &Module) -> Option<&'a Module> {
    (0..=path.len()).rev().find_map(|n| {
        files
            .get_key_value(&(krate.clone(), path[..n].to_vec()))
            .map(|(k, _)| k)
    })
}

fn name((krate, path): &Module) -> String {
    if path.is_empty() {
        krate.clone()
    } else {
        format!("{krate}::{}", path.join("::"))
    }
}

#[test]
fn each_crate_depends_only_on_lower_layers() {
    let layers = Layers::read();
    let mut wrong = Vec::new();
    for (krate, dir) in crates() {
        let Some((lowest, _)) = layers.range(&krate) else {
            panic!(
                "crate `{krate}` ({}) is in no layer of ARCHITECTURE.md's table",
                dir.display()
            );
        };
        for dep in manifest(&dir).1 {
            let (_, highest) = layers.range(&dep).unwrap_or((usize::MAX, usize::MAX));
            if highest >= lowest {
                wrong.push(format!(
                    "{krate} (from layer {lowest}) depends on {dep} (up to layer {highest})"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "crate dependencies that run up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_host_has_the_layers_architecture_md_names_and_no_import_circle() {
    let layers = Layers::read();
    let mut files = BTreeMap::new();
    for (krate, dir) in crates() {
        files.extend(self::files(&krate, &dir.join("src")));
    }
    let mut edges: BTreeMap<&Module, BTreeSet<&Module>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (module, path) in &files {
        let Some(layer) = layers.of(module) else {
            panic!(
                "`{}` ({}) is in no layer of ARCHITECTURE.md's table",
                name(module),
                path.display()
            );
        };
        let text = std::fs::read_to_string(path).expect("source");
        // A crate root that only declares and re-exports its modules is not a room of its own.
        let declares_only = module.1.is_empty() && !layers.whole.contains_key(&module.0);
        if declares_only {
            continue;
        }
        for import in imports(module, &text) {
            let Some(target) = resolve(&files, &import) else {
                continue;
            };
            if target == module {
                continue;
            }
            let target_layer = layers.of(target).unwrap_or(usize::MAX);
            if target_layer > layer {
                wrong.push(format!(
                    "{} (layer {layer}) imports {} (layer {target_layer})",
                    name(module),
                    name(target)
                ));
            }
            edges.entry(module).or_default().insert(target);
        }
    }
    assert!(wrong.is_empty(), "imports that run back up:\n{}", wrong.join("\n"));
    // A circle is a path back to where it started: a depth-first walk finds any.
    let mut done: BTreeSet<&Module> = BTreeSet::new();
    for start in files.keys() {
        let mut stack: Vec<(&Module, Vec<&Module>)> = vec![(start, Vec::new())];
        let mut on_path: Vec<&Module> = Vec::new();
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
                    let circle: Vec<String> = on_path[from..].iter().map(|m| name(m)).collect();
                    panic!("import circle: {} → {}", circle.join(" → "), name(child));
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

#[test]
fn every_crate_of_the_host_logs_at_the_configured_level() {
    let filter = tta_host::telemetry::log_filter("debug");
    for krate in crates().keys() {
        let target = format!("{}=debug", krate.replace('-', "_"));
        assert!(
            filter.split(',').any(|d| d == target),
            "{krate} is not in the log filter {filter}"
        );
    }
}
