"""OpenTelemetry set-up shared by the tracing interop scripts: an SDK tracer provider whose spans
are kept in memory, W3C trace context (the SDK's default propagator), and a JSON view of spans."""
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(_provider)


def span_json(span):
    """A finished span as JSON: ids in lowercase hex as W3C writes them."""
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent is not None else None,
        "links": [format(link.context.span_id, "016x") for link in span.links],
        "attributes": dict(span.attributes),
    }


def finished_spans():
    return [span_json(span) for span in exporter.get_finished_spans()]
