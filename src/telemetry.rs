//! Logging and tracing: text or JSON lines, filtered by `log.filter` or
//! `RUST_LOG`; the W3C trace context a task carries from hop to hop; and,
//! with the `otlp` cargo feature, spans exported over OTLP.

use tracing::Span;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use uuid::Uuid;

use crate::config::LogSettings;

/// Keeps the trace exporter alive; dropping it flushes the spans not yet
/// sent. Hold it until the process ends.
#[must_use = "dropping the guard stops the trace export"]
pub struct Guard {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber. Logs go to stderr so that stdout stays
/// for results. In JSON, each line carries the fields of the spans it is
/// in: a line about a message has its `task_id`, `stage`, `attempt` and
/// trace ids. With the `otlp` feature and `OTEL_EXPORTER_OTLP_ENDPOINT`
/// (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, spans are also exported.
pub fn init(settings: &LogSettings) -> Guard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let (json, text) = if settings.format == "json" {
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr);
        (Some(layer), None)
    } else {
        let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
        (None, Some(layer))
    };
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .with(text);
    #[cfg(feature = "otlp")]
    {
        let (layer, provider) = match otlp::layer() {
            Ok(Some((layer, provider))) => (Some(layer), Some(provider)),
            Ok(None) => (None, None),
            Err(err) => {
                eprintln!("warning: OTLP export is off: {err:#}");
                (None, None)
            }
        };
        let _ = registry.with(layer).try_init();
        Guard { provider }
    }
    #[cfg(not(feature = "otlp"))]
    {
        let _ = registry.try_init();
        Guard {}
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    /// The OTLP layer, when an endpoint is configured by the standard
    /// variables; `None` otherwise.
    pub fn layer<S>() -> anyhow::Result<
        Option<(
            tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
            SdkTracerProvider,
        )>,
    >
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let configured = [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
        if !configured {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("tenderflow")
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("tenderflow");
        let layer = tracing_opentelemetry::layer().with_tracer(tracer);
        Ok(Some((layer, provider)))
    }
}

/// A W3C trace context, as carried in the `traceparent` AMQP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace: one per task (the task id's bits).
    pub trace_id: u128,
    /// The span of the hop that published the message.
    pub span_id: u64,
    /// Trace flags (`01`: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// The root context of a task: the task id is the trace id, so one task
    /// is one trace.
    pub fn for_task(task_id: Uuid) -> TraceParent {
        TraceParent {
            trace_id: task_id.as_u128(),
            span_id: new_span_id(),
            flags: 1,
        }
    }

    /// Reads a `traceparent` header of version `00`; `None` when it is
    /// malformed or has an all-zero id (which W3C says to ignore).
    pub fn parse(header: &str) -> Option<TraceParent> {
        let mut parts = header.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || parts.next().is_some() {
            return None;
        }
        let hex = |s: &str, len: usize| {
            (s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                .then_some(())
        };
        hex(trace, 32)?;
        hex(span, 16)?;
        hex(flags, 2)?;
        let parsed = TraceParent {
            trace_id: u128::from_str_radix(trace, 16).ok()?,
            span_id: u64::from_str_radix(span, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        (parsed.trace_id != 0 && parsed.span_id != 0).then_some(parsed)
    }

    /// The context of a hop that continues this one: same trace, a new
    /// span id.
    pub fn child(&self) -> TraceParent {
        TraceParent {
            span_id: new_span_id(),
            ..*self
        }
    }

    /// The header value.
    pub fn header(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

fn new_span_id() -> u64 {
    // The low 64 bits of a v7 UUID are random (but for two variant bits).
    let id = Uuid::now_v7().as_u128() as u64;
    if id == 0 { 1 } else { id }
}

/// Starts one hop of a task's trace in `span` (a delivery's span, which
/// declares `trace_id`, `span_id` and `parent_span_id`): the hop is a child
/// of `incoming`, the ids go on the span (so every log line of the delivery
/// carries them), and the answer is the context to publish onward. With
/// OTLP export on, the hop is the exported span itself.
pub fn start_hop(span: &Span, incoming: &TraceParent) -> TraceParent {
    let hop = exported_child(span, incoming).unwrap_or_else(|| incoming.child());
    span.record(
        "trace_id",
        tracing::field::display(format_args!("{:032x}", hop.trace_id)),
    );
    span.record(
        "span_id",
        tracing::field::display(format_args!("{:016x}", hop.span_id)),
    );
    span.record(
        "parent_span_id",
        tracing::field::display(format_args!("{:016x}", incoming.span_id)),
    );
    hop
}

/// Makes `span` a child of the message's `traceparent`, for export: call
/// it before the span is first entered (the exporter fixes a span's parent
/// then). Without the `otlp` feature, or without a valid header, it does
/// nothing.
pub fn adopt_parent(span: &Span, traceparent: Option<&str>) {
    #[cfg(feature = "otlp")]
    if let Some(incoming) = traceparent.and_then(TraceParent::parse) {
        use opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
        };
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let remote = SpanContext::new(
            TraceId::from_bytes(incoming.trace_id.to_be_bytes()),
            SpanId::from_bytes(incoming.span_id.to_be_bytes()),
            TraceFlags::new(incoming.flags),
            true,
            TraceState::default(),
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    #[cfg(not(feature = "otlp"))]
    let _ = (span, traceparent);
}

/// The exported span's own context, when it continues `incoming`'s trace
/// (see [`adopt_parent`]).
#[cfg(feature = "otlp")]
fn exported_child(span: &Span, incoming: &TraceParent) -> Option<TraceParent> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = span.context();
    let own = context.span().span_context().clone();
    let trace_id = u128::from_be_bytes(own.trace_id().to_bytes());
    if !own.is_valid() || trace_id != incoming.trace_id {
        return None;
    }
    Some(TraceParent {
        trace_id,
        span_id: u64::from_be_bytes(own.span_id().to_bytes()),
        flags: own.trace_flags().to_u8(),
    })
}

#[cfg(not(feature = "otlp"))]
fn exported_child(_span: &Span, _incoming: &TraceParent) -> Option<TraceParent> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_and_a_child_keeps_the_trace() {
        let task = Uuid::now_v7();
        let root = TraceParent::for_task(task);
        assert!(root.header().contains(&task.simple().to_string()));
        let parsed = TraceParent::parse(&root.header()).unwrap();
        assert_eq!(parsed, root);
        let child = parsed.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
        assert_eq!(child.flags, 1);
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "",
            "00-abc-def-01",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
        assert!(
            TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_some()
        );
    }
}
