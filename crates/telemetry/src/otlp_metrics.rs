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
use std::time::{Duration, SystemTime};
use tta_core::config::telemetry::{OtlpConfig, OtlpProtocol};

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

/// Converts gathered families into one OTLP request for `service`; `start` is when counting began.
pub fn to_request(families: &[MetricFamily], service: &str, start: SystemTime) -> ExportMetricsServiceRequest {
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
                attributes: vec![string_kv("service.name", service)],
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
    /// Where it sends, for messages.
    pub destination: String,
    /// Whether the last push failed, so a failure is reported once.
    pub failing: bool,
}

enum Target {
    Grpc(MetricsServiceClient<tonic::transport::Channel>),
    Http { client: reqwest::Client, url: String },
}

impl MetricsPusher {
    /// A pusher for `config`; needs a tokio runtime context (the gRPC channel connects lazily).
    pub fn new(config: &OtlpConfig) -> Result<Self, String> {
        let endpoint = config.endpoint();
        let timeout = Duration::from_millis(config.timeout_ms);
        let (target, destination) = match config.protocol {
            OtlpProtocol::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
                    .map_err(|e| format!("{endpoint}: {e}"))?
                    .connect_timeout(timeout)
                    .timeout(timeout)
                    .connect_lazy();
                (
                    Target::Grpc(MetricsServiceClient::new(channel)),
                    format!("otlp grpc {endpoint}"),
                )
            }
            OtlpProtocol::HttpProtobuf => {
                let client = reqwest::Client::builder()
                    .timeout(timeout)
                    .build()
                    .map_err(|e| format!("HTTP client: {e}"))?;
                let url = format!("{endpoint}/v1/metrics");
                (
                    Target::Http {
                        client,
                        url: url.clone(),
                    },
                    format!("otlp http {url}"),
                )
            }
        };
        Ok(MetricsPusher {
            target,
            timeout,
            destination,
            failing: false,
        })
    }

    /// Sends one request; an error says why it did not arrive.
    pub async fn push(&mut self, request: ExportMetricsServiceRequest) -> Result<(), String> {
        let send = async {
            match &mut self.target {
                Target::Grpc(client) => client.export(request).await.map(drop).map_err(|s| s.to_string()),
                Target::Http { client, url } => {
                    let body = prost::Message::encode_to_vec(&request);
                    let response = client
                        .post(url.as_str())
                        .header("content-type", "application/x-protobuf")
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
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
