//! A host killed with SIGKILL while it stores an upload, or while it reloads a changed
//! plugin, restarts with the old or the new component intact, never a half-written one.

use crate::generated::{Execute, component};
use crate::process::{ServeProcess, write_config};
use crate::serve::{KEY_ACME, send, with_custom_section};
use std::path::Path;
use std::time::{Duration, SystemTime};
use tta_host::tenant::hash_key;

async fn put(server: &ServeProcess, name: &str, bytes: Vec<u8>) -> u16 {
    send(
        reqwest::Method::PUT,
        &server.url(&format!("/v1/primitives/{name}")),
        Some(KEY_ACME),
        bytes,
        &[],
    )
    .await
    .status
}

async fn echoes(server: &ServeProcess, name: &str) -> bool {
    let reply = send(
        reqwest::Method::POST,
        &server.url(&format!("/v1/primitives/{name}/execute")),
        Some(KEY_ACME),
        b"{\"still\":\"here\"}".to_vec(),
        &[],
    )
    .await;
    reply.status == 200 && reply.body == b"{\"still\":\"here\"}"
}

/// Replaces `path` the way an operator's deployment should: write beside it, rename over.
fn replace(path: &Path, bytes: &[u8]) {
    let temporary = path.with_extension("wasm.new");
    std::fs::write(&temporary, bytes).expect("write the new plugin");
    std::fs::rename(&temporary, path).expect("rename over the plugin");
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".upload-"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_mid_upload_or_mid_reload_restarts_with_the_old_or_the_new_plugin() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("crash/upload");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("plugins")).expect("plugins dir");
    let config = write_config(
        &dir,
        &format!(
            "[[tenants]]\nid = \"acme\"\napi_key_sha256 = [\"{}\"]\nprimitives = [\"*\"]\nuploads = true\n",
            hash_key(KEY_ACME)
        ),
    );
    let old = component("mine", Execute::Echo);
    // Padded to 24 MiB, so a kill lands in the middle of writing and syncing it more often.
    let padding = "x".repeat(24 << 20);
    let new = with_custom_section(&old, &padding);
    let shared_old = component("shared", Execute::Echo);
    let shared_new = with_custom_section(&shared_old, &padding);
    let shared = dir.join("plugins/shared.wasm");
    std::fs::write(&shared, &shared_old).expect("write the shared plugin");
    let stored = dir.join("uploads/acme/mine.wasm");

    let mut server = ServeProcess::start(&dir, &config).await;
    assert_eq!(put(&server, "mine", old.clone()).await, 201);
    let (mut kept_old, mut kept_new) = (0, 0);
    // Kills spread over the upload: while the body arrives, while it compiles, while it is
    // written and synced, after; the reload of `shared` races the same kill.
    for delay_ms in [0, 10, 25, 50, 100, 200, 400] {
        let upload = {
            let url = server.url("/v1/primitives/mine");
            let body = new.clone();
            tokio::spawn(async move {
                crate::http_client()
                    .put(url)
                    .bearer_auth(KEY_ACME)
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        };
        let swap_to_new = delay_ms % 20 == 0;
        replace(&shared, if swap_to_new { &shared_new } else { &shared_old });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        server.kill().await;
        let answered = upload.await.expect("the upload task ends");

        server = ServeProcess::start(&dir, &config).await;
        let on_disk = std::fs::read(&stored).expect("the stored upload exists");
        if on_disk == old {
            kept_old += 1;
        } else if on_disk == new {
            kept_new += 1;
        } else {
            panic!(
                "after a kill {delay_ms} ms into the upload, {} holds {} bytes: neither the old ({}) nor the new ({})",
                stored.display(),
                on_disk.len(),
                old.len(),
                new.len()
            );
        }
        // An upload acknowledged before the kill is the one kept.
        if let Ok(200 | 201) = answered {
            assert_eq!(on_disk, new, "an acknowledged upload was lost");
        }
        assert!(echoes(&server, "mine").await, "the kept upload loads and runs");
        assert!(echoes(&server, "shared").await, "the shared plugin loads and runs");
        // Back to the old one, so every round replaces old with new.
        assert!(matches!(put(&server, "mine", old.clone()).await, 200 | 201));
    }
    eprintln!("kills kept the old upload {kept_old} times, the new one {kept_new} times");

    // The temporary files of unfinished uploads: removed once surely abandoned (older than
    // a minute), kept while another replica may still be writing them.
    let uploads = dir.join("uploads/acme");
    let stale = uploads.join(".upload-stale.tmp");
    let fresh = uploads.join(".upload-fresh.tmp");
    std::fs::write(&stale, b"half").expect("write a stale temporary");
    std::fs::write(&fresh, b"half").expect("write a fresh temporary");
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(120)))
        .expect("age the stale temporary");
    server.kill().await;
    let server = ServeProcess::start(&dir, &config).await;
    let left = temporaries(&uploads);
    assert!(!left.contains(&".upload-stale.tmp".to_owned()), "{left:?}");
    assert!(left.contains(&".upload-fresh.tmp".to_owned()), "{left:?}");
    assert!(echoes(&server, "mine").await);
    assert_eq!(server.stop().await, Some(0), "a clean exit on SIGTERM");
}
