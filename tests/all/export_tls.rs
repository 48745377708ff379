//! Export to a hosted backend: OTLP over TLS (a CA of the test's own, trusted through the
//! config) to a receiver that refuses any export without its key header, for gRPC and
//! HTTP/protobuf, gzip on; the key comes from a `file:` reference and is never printed;
//! every signal, the metrics push included, carries the full resource.

use crate::http_out::Pki;
use crate::otlp_receiver::{self, attr, text};
use crate::telemetry::otlp_config;
use crate::{config, fixture};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tta_host::Host;
use tta_host::config::telemetry::{Compression, OtlpProtocol, Secret};
use tta_host::telemetry::Telemetry;

const KEY: &str = "backend-key-5f2c";

fn resource_value(attributes: &[KeyValue], key: &str) -> Option<String> {
    attr(attributes, key).map(|v| text(&v))
}

async fn export_over_tls(protocol: OtlpProtocol) {
    let pki = Pki::new();
    let (cert, key) = pki.leaf_pem(&["localhost"]);
    let (addr, received) = otlp_receiver::secured(protocol, &cert, &key, ("x-api-key", KEY)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pki.ca.pem()).expect("CA");
    let key_file = dir.path().join("backend-key");
    std::fs::write(&key_file, format!("{KEY}\n")).expect("key file");

    let telemetry_with = |header: Option<Secret>| {
        let mut t = otlp_config(format!("https://localhost:{}", addr.port()), protocol);
        t.otlp.certificate = Some(ca.clone());
        t.otlp.compression = Compression::Gzip;
        if let Some(value) = header {
            t.otlp.headers.insert("x-api-key".into(), value);
        }
        t.resource.insert("deployment.environment.name".into(), "test".into());
        t
    };
    // Without the key the backend refuses, and nothing arrives.
    let keyless = Host::with_telemetry(
        config(),
        Telemetry::builder(telemetry_with(None)).build().expect("telemetry"),
    )
    .expect("host");
    keyless.load(&fixture("context-probe")).await.expect("loads");
    assert!(crate::call(&keyless, "context-probe", "{}").await.output.is_ok());
    assert!(
        received.until(|r| r.refused.load(Ordering::SeqCst) > 0).await,
        "{protocol:?}: an export without the key was not refused"
    );
    assert!(received.spans().is_empty(), "{protocol:?}");

    let config_with_key = telemetry_with(Some(Secret(format!("file:{}", key_file.display()))));
    assert!(
        !format!("{config_with_key:?}").contains(KEY),
        "a header value is never printed"
    );
    let telemetry = Telemetry::builder(config_with_key).build().expect("telemetry");
    assert!(!telemetry.summary().contains(KEY));
    let host = Host::with_telemetry(config(), telemetry).expect("host");
    host.load(&fixture("context-probe")).await.expect("loads");
    assert!(crate::call(&host, "context-probe", "{}").await.output.is_ok());
    assert!(host.telemetry().flush(Duration::from_secs(30)));
    assert!(
        received
            .until(|r| !r.spans().is_empty() && !r.metrics().is_empty())
            .await,
        "{protocol:?}: spans {} metrics {}",
        received.spans().len(),
        received.metrics().len()
    );
    for (signal, resource) in [
        ("traces", received.span_resources()),
        ("metrics", received.metric_resources()),
    ] {
        let resource = resource
            .first()
            .cloned()
            .unwrap_or_else(|| panic!("{protocol:?} {signal}: no resource"));
        let get = |key: &str| resource_value(&resource, key);
        assert_eq!(get("service.name").as_deref(), Some("tta-test"), "{signal}");
        assert_eq!(get("deployment.environment.name").as_deref(), Some("test"), "{signal}");
        assert_eq!(
            get("service.version").as_deref(),
            Some(env!("CARGO_PKG_VERSION")),
            "{signal}"
        );
        assert_eq!(get("process.pid"), Some(std::process::id().to_string()), "{signal}");
        assert_eq!(get("telemetry.sdk.language").as_deref(), Some("rust"), "{signal}");
        for key in ["service.instance.id", "host.name"] {
            assert!(
                get(key).is_some_and(|v| !v.is_empty()),
                "{protocol:?} {signal}: no {key}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_reaches_a_tls_backend_with_its_key_and_the_full_resource() {
    export_over_tls(OtlpProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_reaches_a_tls_backend_with_its_key_and_the_full_resource() {
    export_over_tls(OtlpProtocol::HttpProtobuf).await;
}
