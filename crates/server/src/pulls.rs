//! The OCI references of `server.plugins`: pulled at start, and asked again every
//! `registry.poll_interval_ms` where their tags point. Each reference is served from the
//! file that stands for it in the cache, so a tag that moved reaches the reload scan as a
//! changed file: the new component is loaded beside the old one and swapped in only if it
//! loads. A registry that cannot be reached leaves the reference serving what it served.
//! Pulls run outside the reload scan's lock, so a slow registry never holds up an upload.

use super::App;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tta_catalog::oci::{Client, Reference};
use tta_catalog::sources::Source;

/// The references to keep resolved, and when they were last asked.
pub(crate) struct Pulls {
    client: Client,
    references: Vec<Reference>,
    cache: PathBuf,
    limit: u64,
    interval: Option<Duration>,
    last: Option<Instant>,
}

impl Pulls {
    /// The pulls of the references among `sources` (`server.plugins`); `None` when there
    /// are none.
    pub(crate) fn new(config: &tta_core::config::HostConfig, sources: &[Source]) -> Option<Pulls> {
        let references: Vec<Reference> = sources
            .iter()
            .filter_map(|source| match source {
                Source::Oci(reference) => Some(reference.clone()),
                _ => None,
            })
            .collect();
        (!references.is_empty()).then(|| Pulls {
            client: Client::new(&config.registry),
            references,
            cache: tta_catalog::oci::cache_root(config),
            limit: config.server.max_upload_bytes as u64,
            interval: (config.registry.poll_interval_ms > 0)
                .then(|| Duration::from_millis(config.registry.poll_interval_ms)),
            last: None,
        })
    }

    /// Resolves every reference when it is due: at start, then once per interval (a
    /// `@sha256:` pin only until it is pulled).
    pub(crate) async fn poll(&mut self, app: &App) {
        let due = match (self.last, self.interval) {
            (None, _) => true,
            (Some(last), Some(interval)) => last.elapsed() >= interval,
            (Some(_), None) => false,
        };
        if !due {
            return;
        }
        self.last = Some(Instant::now());
        for reference in &self.references {
            let path = tta_catalog::oci::resolved_path(&self.cache, reference);
            if reference.pinned().is_some() && path.is_file() {
                continue;
            }
            match self.client.resolve(reference, &self.cache, self.limit).await {
                Ok(resolved) if resolved.moved => {
                    tracing::info!(reference = %reference, digest = %resolved.digest, "pulled");
                    app.metrics.plugin_reloads.with_label_values(&["oci", "pulled"]).inc();
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(reference = %reference, "{e}; what it served (if anything) keeps serving");
                    app.metrics.plugin_reloads.with_label_values(&["oci", "failed"]).inc();
                }
            }
        }
    }
}
