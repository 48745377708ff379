//! Loading: every example loads and describes itself; every kind of bad file gets its own error.

use crate::{config, fixture, plugin, repo};
use std::path::PathBuf;
use tta_host::cache::Origin;
use tta_host::{Host, HostConfig, LoadError};

const EXAMPLES: [&str; 5] = ["echo", "uppercase", "json-validate", "word-count", "orchestrator"];

fn write_temp(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write");
    (dir, path)
}

async fn load_err(bytes: &[u8]) -> LoadError {
    let (_dir, path) = write_temp("bad.wasm", bytes);
    let host = Host::new(config()).expect("host");
    host.load(&path).await.expect_err("must be rejected")
}

#[tokio::test]
async fn every_example_loads_with_its_metadata() {
    let host = Host::new(config()).expect("host");
    for name in EXAMPLES {
        let p = host.load(&plugin(name)).await.expect("loads");
        assert_eq!(p.metadata.name, name);
        assert_eq!(p.metadata.version, "0.1.0");
        assert!(!p.metadata.description.is_empty());
        assert_eq!(p.language.as_deref(), Some("Rust"), "{name}");
        assert!(p.size > 1000);
        assert_eq!(p.digest.len(), 64);
    }
    assert_eq!(host.registry().names().len(), EXAMPLES.len());
}

#[tokio::test]
async fn missing_file_is_not_found() {
    let host = Host::new(config()).expect("host");
    let err = host
        .load(&repo().join("plugins/no-such.wasm"))
        .await
        .expect_err("missing");
    assert!(matches!(err, LoadError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("cargo xtask plugins"), "{err}");
}

#[tokio::test]
async fn text_file_is_not_wasm() {
    let err = load_err(b"hello, I am not wasm at all").await;
    assert!(matches!(err, LoadError::NotWasm { .. }), "{err}");
}

#[tokio::test]
async fn four_byte_file_is_truncated() {
    let err = load_err(b"\0asm").await;
    assert!(matches!(err, LoadError::Truncated { len: 4, .. }), "{err}");
}

#[tokio::test]
async fn cut_off_component_is_invalid_with_an_offset() {
    let bytes = std::fs::read(plugin("echo")).expect("read");
    let err = load_err(&bytes[..bytes.len() / 2]).await;
    let LoadError::Invalid { reason, .. } = &err else {
        panic!("expected Invalid, got {err}");
    };
    assert!(
        reason.contains("out of bounds") || reason.contains("offset"),
        "says where: {reason}"
    );
}

#[tokio::test]
async fn core_module_says_build_it_as_a_component() {
    let module = wat::parse_str("(module (func (export \"run\")))").expect("wat");
    let err = load_err(&module).await;
    assert!(matches!(err, LoadError::CoreModule { .. }), "{err}");
    assert!(err.to_string().contains("build it as a component"), "{err}");
}

#[tokio::test]
async fn component_without_the_primitive_export_names_it() {
    let component = wat::parse_str("(component)").expect("wat");
    let err = load_err(&component).await;
    let LoadError::WrongWorld { reason, .. } = &err else {
        panic!("expected WrongWorld, got {err}");
    };
    assert!(reason.contains("tta:primitives/primitive@0.1.0"), "{reason}");
}

#[tokio::test]
async fn component_with_a_foreign_import_names_it() {
    let component = wat::parse_str(
        r#"(component (import "acme:secrets/vault@1.0.0" (instance (export "get" (func (param "k" string) (result string))))))"#,
    )
    .expect("wat");
    let err = load_err(&component).await;
    let LoadError::WrongWorld { reason, .. } = &err else {
        panic!("expected WrongWorld, got {err}");
    };
    assert!(reason.contains("`acme:secrets/vault@1.0.0`"), "{reason}");
}

#[tokio::test]
async fn component_importing_another_wasi_otel_version_is_told_which_one_the_host_has() {
    let component = wat::parse_str(
        r#"(component (import "wasi:otel/tracing@0.2.0-draft" (instance (export "outer-span-context" (func)))))"#,
    )
    .expect("wat");
    let err = load_err(&component).await;
    let LoadError::WrongWorld { reason, .. } = &err else {
        panic!("expected WrongWorld, got {err}");
    };
    assert!(reason.contains("`wasi:otel/tracing@0.2.0-draft`"), "{reason}");
    assert!(
        reason.contains("wasi:otel/{tracing,logs,metrics}@0.2.0-rc.2"),
        "{reason}"
    );
}

#[tokio::test]
async fn component_importing_a_draft_wasi_config_is_told_which_version_the_host_has() {
    let component =
        wat::parse_str(r#"(component (import "wasi:config/store@0.2.0-draft" (instance (export "get-all" (func)))))"#)
            .expect("wat");
    let err = load_err(&component).await;
    let LoadError::WrongWorld { reason, .. } = &err else {
        panic!("expected WrongWorld, got {err}");
    };
    assert!(reason.contains("`wasi:config/store@0.2.0-draft`"), "{reason}");
    assert!(reason.contains("wasi:config/store@0.2.0-rc.1"), "{reason}");
}

#[tokio::test]
async fn component_with_a_mistyped_export_is_wrong_world() {
    let component = wat::parse_str(
        r#"(component
             (core module $m (func (export "f")))
             (core instance $i (instantiate $m))
             (func $f (canon lift (core func $i "f")))
             (instance $p (export "describe" (func $f)) (export "execute" (func $f)))
             (export "tta:primitives/primitive@0.1.0" (instance $p)))"#,
    )
    .expect("wat");
    let err = load_err(&component).await;
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err}");
}

#[tokio::test]
async fn two_files_with_one_name_are_refused() {
    let (_dir, copy) = write_temp("echo-copy.wasm", &std::fs::read(plugin("echo")).expect("read"));
    let host = Host::new(config()).expect("host");
    host.load(&plugin("echo")).await.expect("first loads");
    let err = host.load(&copy).await.expect_err("duplicate");
    assert!(
        matches!(&err, LoadError::Duplicate { name, .. } if name == "echo"),
        "{err}"
    );
}

#[tokio::test]
async fn component_built_for_wasm32_unknown_unknown_imports_no_wasi() {
    let host = Host::new(config()).expect("host");
    let p = host.load(&fixture("echo-no-wasi")).await.expect("loads");
    assert!(p.imports.iter().all(|i| !i.starts_with("wasi:")), "{:?}", p.imports);
    let outcome = crate::call(&host, "echo", "no wasi needed").await;
    assert_eq!(outcome.output.expect("runs"), b"no wasi needed");
}

#[tokio::test]
async fn second_load_comes_from_the_cache_and_a_tampered_cache_is_recompiled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = HostConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..HostConfig::default()
    };
    let first = Host::new(config.clone()).expect("host");
    assert_eq!(
        first.inspect(&plugin("uppercase")).await.expect("loads").origin,
        Origin::Compiled
    );
    let second = Host::new(config.clone()).expect("host");
    assert_eq!(
        second.inspect(&plugin("uppercase")).await.expect("loads").origin,
        Origin::Cached
    );

    for entry in std::fs::read_dir(dir.path()).expect("cache dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let mut bytes = std::fs::read(&path).expect("read");
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            std::fs::write(&path, bytes).expect("tamper");
        }
    }
    let third = Host::new(config).expect("host");
    let p = third.load(&plugin("uppercase")).await.expect("still loads");
    assert_eq!(
        p.origin,
        Origin::Compiled,
        "a tampered artifact must never be deserialized"
    );
    let outcome = crate::call(&third, "uppercase", r#"{"text":"ok"}"#).await;
    assert_eq!(crate::json_output(&outcome)["text"], "OK");
}
