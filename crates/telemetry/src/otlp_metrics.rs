//! Pushes the Prometheus registry over OTLP, gRPC or HTTP/protobuf.
//!
//! The registry is the one source of truth for metrics (its handles are lock-free on the
//! call path); this module converts a gather of it to OTLP cumulative sums, gauges and
//! histograms, following the OpenTelemetry ↔ Prometheus mapping (`_total` is dropped
//! from counter names, units come from `_seconds`/`_bytes`).

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus::proto::{MetricFamily, MetricType};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use tta_core::config::otlp::Destination;
use tta_core::config::telemetry::{Compression, OtlpProtocol};

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos()).unwrap_or(u64::MAX)
}

/// The OTLP form of the SDK's resource, for requests built here.
pub fn resource_attributes(resource: &opentelemetry_sdk::Resource) -> Vec<KeyValue> {
    resource
        .iter()
        .map(|(key, value)| {
            let value = match value {
                opentelemetry::Value::I64(n) => any_value::Value::IntValue(*n),
                opentelemetry::Value::Bool(b) => any_value::Value::BoolValue(*b),
                opentelemetry::Value::F64(f) => any_value::Value::DoubleValue(*f),
                other => any_value::Value::StringValue(other.to_string()),
            };
            KeyValue {
                key: key.to_string(),
                value: Some(AnyValue { value: Some(value) }),
                ..Default::default()
            }
        })
        .collect()
}

/// Converts gathered families into one OTLP request with `resource`; `start` is when
/// counting began.
pub fn to_request(families: &[MetricFamily], resource: &[KeyValue], start: SystemTime) -> ExportMetricsServiceRequest {
    let start = unix_nanos(start);
    let now = unix_nanos(SystemTime::now());
    let cumulative = AggregationTemporality::Cumulative as i32;
    let mut metrics = Vec::with_capacity(families.len());
    for family in families {
        let attributes = |m: &prometheus::proto::Metric| -> Vec<KeyValue> {
            m.get_label().iter().map(|l| string_kv(l.name(), l.value())).collect()
        };
        let name = family.name();
        let unit = if name.contains("_seconds") {
            "s"
        } else if name.contains("_bytes") {
            "By"
        } else {
            ""
        };
        let number = |value: f64, m: &prometheus::proto::Metric| NumberDataPoint {
            attributes: attributes(m),
            start_time_unix_nano: start,
            time_unix_nano: now,
            value: Some(number_data_point::Value::AsDouble(value)),
            ..Default::default()
        };
        let data = match family.get_field_type() {
            MetricType::COUNTER => metric::Data::Sum(Sum {
                data_points: family
                    .get_metric()
                    .iter()
                    .map(|m| number(m.get_counter().get_value(), m))
                    .collect(),
                aggregation_temporality: cumulative,
                is_monotonic: true,
            }),
            MetricType::GAUGE => metric::Data::Gauge(Gauge {
                data_points: family
                    .get_metric()
                    .iter()
                    .map(|m| number(m.get_gauge().get_value(), m))
                    .collect(),
            }),
            MetricType::HISTOGRAM => metric::Data::Histogram(Histogram {
                data_points: family
                    .get_metric()
                    .iter()
                    .map(|m| {
                        let h = m.get_histogram();
                        let buckets = h.get_bucket();
                        let mut counts = Vec::with_capacity(buckets.len() + 1);
                        let mut previous = 0;
                        for b in buckets {
                            counts.push(b.cumulative_count().saturating_sub(previous));
                            previous = b.cumulative_count();
                        }
                        counts.push(h.get_sample_count().saturating_sub(previous));
                        HistogramDataPoint {
                            attributes: attributes(m),
                            start_time_unix_nano: start,
                            time_unix_nano: now,
                            count: h.get_sample_count(),
                            sum: Some(h.get_sample_sum()),
                            bucket_counts: counts,
                            explicit_bounds: buckets.iter().map(|b| b.upper_bound()).collect(),
                            ..Default::default()
                        }
                    })
                    .collect(),
                aggregation_temporality: cumulative,
            }),
            _ => continue,
        };
        let otlp_name = match family.get_field_type() {
            MetricType::COUNTER => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        metrics.push(Metric {
            name: otlp_name.to_owned(),
            description: family.help().to_owned(),
            unit: unit.to_owned(),
            data: Some(data),
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource.to_vec(),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "tta-host".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Sends metric requests to one OTLP endpoint.
pub struct MetricsPusher {
    target: Target,
    timeout: Duration,
    /// The resource of every request.
    pub resource: Vec<KeyValue>,
    /// Where it sends, for messages.
    pub destination: String,
    /// Whether the last push failed, so a failure is reported once.
    pub failing: bool,
}

enum Target {
    Grpc {
        client: MetricsServiceClient<tonic::transport::Channel>,
        metadata: tonic::metadata::MetadataMap,
    },
    Http {
        client: reqwest::Client,
        url: String,
        headers: reqwest::header::HeaderMap,
        gzip: bool,
    },
}

impl MetricsPusher {
    /// A pusher to `destination` with its resolved `headers`; needs a tokio runtime context
    /// (the gRPC channel connects lazily).
    pub fn new(
        destination: &Destination,
        headers: HashMap<String, String>,
        resource: &opentelemetry_sdk::Resource,
    ) -> Result<Self, String> {
        let url = destination.url.clone();
        let timeout = Duration::from_millis(destination.timeout_ms);
        let gzip = destination.compression == Compression::Gzip;
        let (target, label) = match destination.protocol {
            OtlpProtocol::Grpc => {
                let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone())
                    .map_err(|e| format!("{url}: {e}"))?
                    .connect_timeout(timeout)
                    .timeout(timeout);
                if url.starts_with("https://") {
                    endpoint = endpoint
                        .tls_config(crate::connect::tonic_tls(destination)?)
                        .map_err(|e| format!("TLS: {e}"))?;
                }
                let mut client = MetricsServiceClient::new(endpoint.connect_lazy());
                if gzip {
                    client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                let metadata = crate::connect::metadata(&headers)?;
                (Target::Grpc { client, metadata }, format!("otlp grpc {url}"))
            }
            OtlpProtocol::HttpProtobuf => {
                let client = crate::connect::http_client(destination)?;
                let mut map = reqwest::header::HeaderMap::new();
                for (key, value) in &headers {
                    let name = reqwest::header::HeaderName::from_bytes(key.as_bytes())
                        .map_err(|_| format!("header `{key}` is not a valid header name"))?;
                    let value = reqwest::header::HeaderValue::from_str(value)
                        .map_err(|_| format!("the value of header `{key}` is not valid in a header"))?;
                    map.insert(name, value);
                }
                (
                    Target::Http {
                        client,
                        url: url.clone(),
                        headers: map,
                        gzip,
                    },
                    format!("otlp http {url}"),
                )
            }
        };
        Ok(MetricsPusher {
            target,
            timeout,
            resource: resource_attributes(resource),
            destination: label,
            failing: false,
        })
    }

    /// Sends one request; an error says why it did not arrive.
    pub async fn push(&mut self, request: ExportMetricsServiceRequest) -> Result<(), String> {
        let send = async {
            match &mut self.target {
                Target::Grpc { client, metadata } => {
                    let mut request = tonic::Request::new(request);
                    *request.metadata_mut() = metadata.clone();
                    client.export(request).await.map(drop).map_err(|s| s.to_string())
                }
                Target::Http {
                    client,
                    url,
                    headers,
                    gzip,
                } => {
                    let mut body = prost::Message::encode_to_vec(&request);
                    let mut post = client
                        .post(url.as_str())
                        .headers(headers.clone())
                        .header("content-type", "application/x-protobuf");
                    if *gzip {
                        use std::io::Write as _;
                        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                        encoder.write_all(&body).map_err(|e| e.to_string())?;
                        body = encoder.finish().map_err(|e| e.to_string())?;
                        post = post.header("content-encoding", "gzip");
                    }
                    let response = post.body(body).send().await.map_err(|e| e.to_string())?;
                    if response.status().is_success() {
                        Ok(())
                    } else {
                        Err(format!("HTTP {}", response.status()))
                    }
                }
            }
        };
        match tokio::time::timeout(self.timeout, send).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }
}
