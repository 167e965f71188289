//! An OTLP/HTTP trace receiver: accepts `POST /v1/traces` and decodes the protobuf bodies.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::web::WebServer;

pub struct OtlpReceiver {
    server: WebServer,
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let router = axum::Router::new().route("/v1/traces", axum::routing::post(|| async { "" }));
        OtlpReceiver { server: WebServer::start(router).await }
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// Every span received so far, decoded, with the content type of its request.
    pub fn spans(&self) -> Vec<(Option<String>, Span)> {
        let mut spans = Vec::new();
        for seen in self.server.requests().into_iter().filter(|seen| seen.uri == "/v1/traces") {
            let request = ExportTraceServiceRequest::decode(seen.body.as_ref()).expect("a valid OTLP protobuf body");
            let content_type = seen.header("content-type").map(str::to_string);
            for resource in request.resource_spans {
                for scope in resource.scope_spans {
                    spans.extend(scope.spans.into_iter().map(|span| (content_type.clone(), span)));
                }
            }
        }
        spans
    }
}

/// A span attribute as text (strings as is, numbers printed).
pub fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match value {
        any_value::Value::StringValue(text) => text.clone(),
        any_value::Value::IntValue(int) => int.to_string(),
        any_value::Value::DoubleValue(double) => double.to_string(),
        any_value::Value::BoolValue(flag) => flag.to_string(),
        other => format!("{other:?}"),
    })
}
