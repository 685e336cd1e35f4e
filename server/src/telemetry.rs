//! Prometheus metrics of one server replica at `GET /metrics`, in the OpenMetrics text format
//! Prometheus scrapes: requests by route and status, their latency, metric points ingested, SSE
//! subscribers, and — read from Postgres at scrape time by the route, so every replica reports
//! the same figures — jobs by status and kind and the workers online.
//!
//! Counters are per replica (Prometheus sums them over instances). Routes are labelled by their
//! template (`/api/v1/runs/{id}`), never by the path a client sent, so an id never becomes a label
//! and the series stay few. The page holds aggregate counts only: no name, id or team appears.

use crate::error::{AppError, Result};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Mutex;

/// The content type of an OpenMetrics text page.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The route label of a request no route matched (a 404 of the router itself).
const UNMATCHED: &str = "unmatched";

/// Labels of a request counter: what was asked and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// Labels of the latency histogram: the route, whatever the answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// Labels of the job gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    status: String,
    kind: String,
}

/// The replica's metrics: shared by the request layer, the handlers that count what they
/// ingested, and the scrape handler.
pub struct Telemetry {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    points: Counter,
    sse_subscribers: Gauge,
    jobs: Family<JobLabels, Gauge>,
    workers_online: Gauge,
    /// Scrapes rebuild the database-derived gauges; one at a time, so two scrapes never mix.
    scrape: Mutex<()>,
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("crucible");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        // 1 ms to ~33 s: metric batches answer in milliseconds, bulk uploads in seconds.
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response head, by method and route template",
            Unit::Seconds,
            latency.clone(),
        );
        let points = Counter::default();
        registry.register(
            "metric_points_ingested",
            "Metric points committed through the REST and MLflow APIs",
            points.clone(),
        );
        let sse_subscribers = Gauge::default();
        registry.register(
            "sse_subscribers",
            "Live-update (SSE) streams open on this replica",
            sse_subscribers.clone(),
        );
        let jobs = Family::<JobLabels, Gauge>::default();
        registry.register(
            "jobs",
            "Jobs in the queue by status and kind (status=\"queued\" is the queue depth)",
            jobs.clone(),
        );
        let workers_online = Gauge::default();
        registry.register(
            "workers_online",
            "Workers heard from within one lease length",
            workers_online.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            points,
            sse_subscribers,
            jobs,
            workers_online,
            scrape: Mutex::new(()),
        }
    }
}

impl Telemetry {
    /// Counts `n` committed metric points; called after the commit, so a rolled-back batch never
    /// counts.
    pub fn points_ingested(&self, n: usize) {
        self.points.inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// The page Prometheus scrapes: this replica's counters, with the gauges set to the figures
    /// the caller read now — `jobs` as (status, kind, count), the workers online, and the live
    /// streams open on this replica.
    pub async fn page(
        &self,
        jobs: Vec<(String, String, i64)>,
        workers_online: i64,
        sse_subscribers: usize,
    ) -> Result<String> {
        // Two scrapes at once would interleave clearing and setting the job gauges.
        let _one_at_a_time = self.scrape.lock().await;
        self.jobs.clear();
        for (status, kind, n) in jobs {
            self.jobs.get_or_create(&JobLabels { status, kind }).set(n);
        }
        self.workers_online.set(workers_online);
        self.sse_subscribers
            .set(i64::try_from(sse_subscribers).unwrap_or(i64::MAX));
        let mut page = String::new();
        prometheus_client::encoding::text::encode(&mut page, &self.registry)
            .map_err(|e| AppError::Internal(format!("encoding the metrics page: {e}")))?;
        Ok(page)
    }

    fn observe(&self, method: &str, route: String, status: u16, seconds: f64) {
        let method = method.to_string();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.clone(),
                route: route.clone(),
            })
            .observe(seconds);
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }
}

/// The route template a request matched, carried from the inner layer (which sees the match) to
/// the outer one (which also sees requests no route matched).
#[derive(Clone)]
struct RouteTemplate(Arc<str>);

/// Inner layer (`route_layer`): records which route template matched.
pub async fn tag_route(request: Request, next: Next) -> Response {
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| RouteTemplate(Arc::from(m.as_str())));
    let mut response = next.run(request).await;
    if let Some(template) = template {
        response.extensions_mut().insert(template);
    }
    response
}

/// Outer layer: counts and times every request, labelled by the template [`tag_route`] found.
pub async fn record_requests(
    State(telemetry): State<Arc<Telemetry>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let route = response
        .extensions()
        .get::<RouteTemplate>()
        .map_or_else(|| UNMATCHED.to_string(), |t| t.0.to_string());
    telemetry.observe(
        method.as_str(),
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
