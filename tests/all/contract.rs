//! Contracts with users: the published WIT package is never edited (a new version goes
//! beside it), and the workflow JSON Schema in the repository matches the code.

use crate::repo;
use sha2::{Digest, Sha256};

/// SHA-256 over the files of `wit/0.1.0`, sorted by name, each as `name\0contents\0`.
const PUBLISHED_0_1_0: &str = "fd9e57cf6bf91a10a9ee31eb383e2585cfd8746fd72dc0595da7f37b744efa52";

#[test]
fn published_wit_0_1_0_is_unchanged() {
    let dir = repo().join("wit/0.1.0");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("wit/0.1.0")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut hasher = Sha256::new();
    for file in &files {
        hasher.update(file.file_name().expect("name").as_encoded_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(file).expect("read"));
        hasher.update([0]);
    }
    let digest = hex::encode(hasher.finalize());
    assert_eq!(
        digest, PUBLISHED_0_1_0,
        "wit/0.1.0 changed: published versions are frozen; add wit/0.2.0 beside it instead"
    );
}

#[test]
fn the_workflow_schema_file_is_current() {
    let path = crate::repo().join("workflows/workflow.schema.json");
    let committed = std::fs::read_to_string(&path).expect("workflows/workflow.schema.json exists");
    assert!(
        committed == tta_host::workflow::json_schema(),
        "{} is stale: regenerate it with `tta-host validate --schema > workflows/workflow.schema.json`",
        path.display()
    );
}
