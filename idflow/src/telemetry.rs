//! OpenTelemetry traces of `idflow serve`: the runner's `tracing` spans (one per processing slice
//! of a run, one per step; see `domain::runner::drive`'s `# Spans`) exported over OTLP
//! http/protobuf when an endpoint is configured, and nothing at all otherwise (no exporter, no
//! background thread, no connection).
//!
//! The configuration is OpenTelemetry's standard environment: `OTEL_EXPORTER_OTLP_ENDPOINT` (the
//! collector's base URL, `/v1/traces` appended) or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full
//! URL) switches export on; `OTEL_SERVICE_NAME` (default `idflow`), `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_EXPORTER_OTLP_HEADERS` and the batch settings `OTEL_BSP_*` are honoured as the SDK reads
//! them.
//!
//! # Layout
//! - [`Traces`]: the tracer provider (a batch exporter), its `tracing` layer, and the flush at
//!   shutdown.
//! - `RunTraces`: the layer around `tracing-opentelemetry`'s that puts every slice of a run in the
//!   run's own trace.
//! - `RunSpans`: the span processor that names the spans, sets their status and places each step
//!   span at the time the step ran.

use std::any::TypeId;
use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, Status, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
};
use opentelemetry::{Context, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanData, SpanProcessor};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber, field};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context as LayerContext, Filter};
use tracing_subscriber::registry::LookupSpan;

use domain::runner::drive::{RUN_SPAN, STEP_SPAN};

/// The variables that switch export on, most specific first.
const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// The service name when neither `OTEL_SERVICE_NAME` nor a `service.name` in
/// `OTEL_RESOURCE_ATTRIBUTES` gives one.
pub const DEFAULT_SERVICE_NAME: &str = "idflow";

/// The target of the runner's spans; no other span is exported.
const RUNNER_TARGET: &str = "domain::runner";

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The endpoint is not an `http://` or `https://` URL. (The exporter would silently fall back
    /// to `localhost:4318`.) The value is not repeated: a URL can carry credentials.
    #[error(
        "{variable} is not an http:// or https:// URL: set it to the collector's address, such as `http://localhost:4318`, or unset it to export no traces"
    )]
    Endpoint { variable: &'static str },
    /// The OTLP exporter refused its configuration (an endpoint that is not a URL, for one).
    #[error(
        "cannot export traces to the OTLP endpoint set in {variable}: check its value (such as `http://localhost:4318`)"
    )]
    Exporter {
        variable: &'static str,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// Trace export, when configured: the provider whose batch processor sends spans in the
/// background.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Traces configured by the process environment; `None` when no endpoint is set.
    pub fn from_env() -> Result<Option<Traces>, TelemetryError> {
        let Some(variable) = endpoint_variable(|name| std::env::var(name).ok())? else {
            return Ok(None);
        };
        // The exporter reads the endpoint, headers, timeout and compression from the environment
        // itself, as every OpenTelemetry SDK does.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .map_err(|source| TelemetryError::Exporter { variable, source })?;
        let batch = BatchSpanProcessor::builder(exporter).build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(RunSpans { inner: batch })
            .with_resource(resource(|name| std::env::var(name).ok()))
            .build();
        Ok(Some(Traces { provider }))
    }

    /// The `tracing` layer that turns the runner's spans into OpenTelemetry spans (and nothing
    /// else: no other span and no event, since a log message may quote a value).
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + use<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let otel = tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("idflow"))
            // Where the span was opened in our source, the thread, the level and idle/busy times
            // say nothing to an operator about a run; the span's own fields do.
            .with_location(false)
            .with_threads(false)
            .with_level(false)
            .with_target(false)
            .with_tracked_inactivity(false);
        RunTraces { inner: otel }.with_filter(RunnerSpans)
    }

    /// Sends the spans still queued and stops the exporter; called once at graceful shutdown, so
    /// the last runs' spans are not lost. Blocks while the batch is sent (bounded by the
    /// exporter's timeout).
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(error = %error, "could not send the last traces");
        }
    }
}

/// The variable that sets the traces endpoint, if any (a blank value is unset), once its value is
/// checked to be an HTTP URL.
fn endpoint_variable(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<&'static str>, TelemetryError> {
    for variable in ENDPOINT_VARIABLES {
        let Some(value) = var(variable).filter(|value| !value.trim().is_empty()) else {
            continue;
        };
        return match reqwest::Url::parse(value.trim()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
                Ok(Some(variable))
            }
            _ => Err(TelemetryError::Endpoint { variable }),
        };
    }
    Ok(None)
}

/// The service's resource: `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` as the SDK reads
/// them, with `service.name` defaulting to `idflow` rather than the SDK's `unknown_service`.
fn resource(var: impl Fn(&str) -> Option<String>) -> Resource {
    let named = var("OTEL_SERVICE_NAME").is_some_and(|name| !name.trim().is_empty())
        || var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attributes| {
            attributes
                .split(',')
                .any(|pair| pair.trim_start().starts_with("service.name="))
        });
    let builder = Resource::builder();
    if named {
        builder.build()
    } else {
        builder.with_service_name(DEFAULT_SERVICE_NAME).build()
    }
}

/// The trace of a run: its id. A run id is a ULID, 128 bits like a trace id and unique, so every
/// processing slice of one run (its start, then one per resume after a wait, possibly in another
/// process or days later) lands in the same trace without storing anything, and an operator can
/// find a run's trace from the run id alone (its 32 hex digits). A random trace id per slice would
/// scatter a run that waits over several traces.
pub fn run_trace_id(run_id: ulid::Ulid) -> TraceId {
    TraceId::from_bytes(run_id.to_bytes())
}

/// The parent context of a slice's span: the run's trace, with no parent span. The SDK takes the
/// trace id of a remote parent and leaves the parent span id empty, so each slice is a root span
/// of the run's trace (a trace may have several roots; there is no span for "the whole run",
/// which would have to stay open across waits of any length and processes).
fn run_context(run_id: ulid::Ulid) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        run_trace_id(run_id),
        SpanId::INVALID,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

/// Only the runner's spans reach the OpenTelemetry layer: no event (a log message may quote a
/// value), and no span of the HTTP server or the SDKs.
struct RunnerSpans;

impl<S> Filter<S> for RunnerSpans {
    fn enabled(&self, metadata: &Metadata<'_>, _: &LayerContext<'_, S>) -> bool {
        metadata.is_span() && metadata.target().starts_with(RUNNER_TARGET)
    }
}

/// `tracing-opentelemetry`'s layer, with each slice's span opened in its run's trace: while the
/// inner layer creates a [`RUN_SPAN`], the run's context ([`run_context`]) is the current
/// OpenTelemetry context, which the inner layer takes as the parent of a span without a `tracing`
/// parent of its own. Everything else is passed through unchanged.
struct RunTraces<L> {
    inner: L,
}

impl<S, L> Layer<S> for RunTraces<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(
        &self,
        metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: LayerContext<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        match slice_run_id(attrs) {
            Some(run_id) => {
                let _current = run_context(run_id).attach();
                self.inner.on_new_span(attrs, id, ctx);
            }
            None => self.inner.on_new_span(attrs, id, ctx),
        }
    }

    fn on_record(&self, span: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        self.inner.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: LayerContext<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        self.inner.on_event(event, ctx);
    }

    fn on_enter(&self, id: &Id, ctx: LayerContext<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: LayerContext<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: LayerContext<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }

    // The inner layer is found by downcasting (`tracing-opentelemetry`'s span extensions ask the
    // subscriber for it), so a wrapper must answer for it as `Layered` does for its layers.
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else {
            // SAFETY: the inner layer's answer points into `self.inner`, which lives as long as
            // `self`; it is passed on as it came, which is what the trait asks of a wrapper.
            unsafe { self.inner.downcast_raw(id) }
        }
    }
}

/// The run id of a slice's span (a [`RUN_SPAN`] of the runner), `None` for any other span.
fn slice_run_id(attrs: &Attributes<'_>) -> Option<ulid::Ulid> {
    let metadata = attrs.metadata();
    if metadata.name() != RUN_SPAN || !metadata.target().starts_with(RUNNER_TARGET) {
        return None;
    }
    let mut visitor = RunIdField(None);
    attrs.record(&mut visitor);
    visitor
        .0
        .and_then(|text| ulid::Ulid::from_string(&text).ok())
}

/// Reads the `run_id` field of a span.
struct RunIdField(Option<String>);

impl field::Visit for RunIdField {
    fn record_str(&mut self, field: &field::Field, value: &str) {
        if field.name() == "run_id" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "run_id" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// The span processor in front of the batch exporter: gives the runner's spans their
/// OpenTelemetry shape from their fields (`tracing` span names are fixed at compile time, and a
/// step's span is opened once the step has ended).
#[derive(Debug)]
struct RunSpans<P> {
    inner: P,
}

impl<P: SpanProcessor> SpanProcessor for RunSpans<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        shape(&mut span);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A slice's span becomes `run <flow>`, a step's `<card> <step>`; either is an error when it
/// failed (described by its error kind, never a message); a step's span is placed at
/// `started_at` for `duration_ms`, when the step ran.
fn shape(span: &mut SpanData) {
    let text = |key: &str| -> Option<String> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.as_str().into_owned())
    };
    let failed = matches!(text("status").as_deref(), Some("failed" | "interrupted"));
    let error_kind = text("error_kind");
    if span.name == RUN_SPAN {
        if let Some(flow) = text("flow") {
            span.name = Cow::Owned(format!("run {flow}"));
        }
    } else if span.name == STEP_SPAN {
        if let (Some(card), Some(step)) = (text("card"), text("step")) {
            span.name = Cow::Owned(format!("{card} {step}"));
        }
        let duration = span.attributes.iter().find_map(|kv| match kv.value {
            Value::I64(ms) if kv.key.as_str() == "duration_ms" => u64::try_from(ms).ok(),
            _ => None,
        });
        let started = text("started_at")
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok())
            .map(SystemTime::from);
        if let (Some(started), Some(duration)) = (started, duration) {
            span.start_time = started;
            span.end_time = started + Duration::from_millis(duration);
        }
    } else {
        return;
    }
    if failed {
        span.status = Status::error(error_kind.unwrap_or_else(|| "failed".to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn export_is_off_without_an_endpoint() {
        assert_eq!(endpoint_variable(vars(&[])).unwrap(), None);
        let blank = vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "  "),
            ("OTEL_SERVICE_NAME", "x"),
        ]);
        assert_eq!(endpoint_variable(blank).unwrap(), None);
        let base = vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")]);
        assert_eq!(
            endpoint_variable(base).unwrap(),
            Some("OTEL_EXPORTER_OTLP_ENDPOINT")
        );
        let both = vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://b/v1/traces"),
        ]);
        assert_eq!(
            endpoint_variable(both).unwrap(),
            Some("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        );
    }

    #[test]
    fn an_endpoint_that_is_not_an_http_url_is_refused_naming_its_variable() {
        for bad in [
            "collector.internal:4318",
            "not a url",
            "grpc://collector:4317",
            "file:///tmp/x",
        ] {
            let error = endpoint_variable(vars(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", bad)]))
                .expect_err(bad);
            let message = error.to_string();
            assert!(
                message.starts_with("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is not an http"),
                "{message}"
            );
            assert!(
                !message.contains(bad),
                "the value is not repeated: {message}"
            );
        }
    }

    #[test]
    fn the_trace_of_a_run_is_its_id() {
        let run_id = ulid::Ulid::from_string("01JEQ4Z5R3M8N2P6T9V0W1X2Y3").unwrap();
        let trace = run_trace_id(run_id);
        assert_eq!(trace.to_string(), format!("{:032x}", u128::from(run_id)));
        // The example of docs/operations.md.
        assert_eq!(trace.to_string(), "0193ae4f9703a22a2b1b49d8381e8bc3");
        assert_ne!(trace, TraceId::INVALID);
    }
}
