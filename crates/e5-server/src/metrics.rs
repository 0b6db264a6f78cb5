//! Prometheus metrics (`GET /metrics`), recorded with the `metrics` facade. The recorder is
//! process-wide, installed once; servers in one process (tests) share it.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let seconds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
        let tokens = [16.0, 64.0, 256.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0];
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full("e5_batch_tokens".into()), &tokens))
            .expect("static buckets are valid")
            .install_recorder()
            .expect("no other metrics recorder is installed in this process")
    })
}

/// Counts and times every request by route and status.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let start = Instant::now();
    let in_flight = gauge!("e5_requests_in_flight");
    let counted = route != "/metrics";
    if counted {
        in_flight.increment(1.0);
    }
    let response = next.run(req).await;
    if counted {
        in_flight.decrement(1.0);
    }
    let status = response.status().as_u16().to_string();
    counter!("e5_requests_total", "route" => route.clone(), "status" => status).increment(1);
    histogram!("e5_request_duration_seconds", "route" => route).record(start.elapsed().as_secs_f64());
    response
}

/// Inputs embedded, by model and prefix choice.
pub fn inputs(model: &str, kind: &'static str, n: usize, tokens: usize) {
    counter!("e5_inputs_total", "model" => model.to_string(), "kind" => kind).increment(n as u64);
    counter!("e5_tokens_total", "model" => model.to_string()).increment(tokens as u64);
}

/// Raw inputs to a model trained with query/passage prefixes that carry neither: the
/// silent quality loss of clients that do not know E5's convention.
pub fn unprefixed(model: &str, n: usize) {
    if n > 0 {
        counter!("e5_unprefixed_inputs_total", "model" => model.to_string()).increment(n as u64);
    }
}

/// Requests cut to `dimensions` the model declares no Matryoshka training for.
pub fn dimension_warning(model: &str) {
    counter!("e5_dimension_warnings_total", "model" => model.to_string()).increment(1);
}

pub fn rejected(model: &str, reason: &'static str) {
    counter!("e5_rejected_requests_total", "model" => model.to_string(), "reason" => reason).increment(1);
}

pub fn truncated(model: &str, n: usize) {
    if n > 0 {
        counter!("e5_truncated_inputs_total", "model" => model.to_string()).increment(n as u64);
    }
}

pub fn queue_depth(model: &str, n: usize) {
    gauge!("e5_queue_inputs", "model" => model.to_string()).set(n as f64);
}

pub fn batch(model: &str, inputs: usize, tokens: usize) {
    counter!("e5_batches_total", "model" => model.to_string()).increment(1);
    histogram!("e5_batch_inputs", "model" => model.to_string()).record(inputs as f64);
    histogram!("e5_batch_tokens", "model" => model.to_string()).record(tokens as f64);
}

pub fn panic(model: &str) {
    counter!("e5_encoder_panics_total", "model" => model.to_string()).increment(1);
}
