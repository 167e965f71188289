//! Pure stream framing: bytes in, lines / SSE events out, and the assembled result type.
//!
//! Providers stream either Server-Sent Events (OpenAI, Anthropic) or newline-delimited JSON
//! (Ollama). Network reads split those anywhere, including inside a UTF-8 character, so the
//! decoders buffer bytes and only decode complete lines. They do no I/O, which is why they
//! can be property-tested over arbitrary chunk splits (below and in each adapter). The loop
//! that reads the socket and feeds them is `http::read_stream`.

use super::{ChatResponse, ToolCall, Usage};
use std::time::Duration;

/// Splits a byte stream into lines (`\n` or `\r\n`), decoding each complete line as UTF-8.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        let mut start = 0;
        for (idx, byte) in bytes.iter().enumerate() {
            if *byte == b'\n' {
                self.pending.extend_from_slice(&bytes[start..idx]);
                out.push(self.take_line());
                start = idx + 1;
            }
        }
        self.pending.extend_from_slice(&bytes[start..]);
    }

    /// End of input: a last line without a newline still counts.
    pub(crate) fn finish(&mut self, out: &mut Vec<String>) {
        if !self.pending.is_empty() {
            out.push(self.take_line());
        }
    }

    fn take_line(&mut self) -> String {
        if self.pending.last() == Some(&b'\r') {
            self.pending.pop();
        }
        let line = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        line
    }
}

/// One Server-Sent Event: its `event:` name (`message` when absent) and its joined `data:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Decodes `text/event-stream` as the HTML spec describes: fields until a blank line.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    lines: LineSplitter,
    scratch: Vec<String>,
    event: String,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        self.lines.push(bytes, &mut scratch);
        for line in scratch.drain(..) {
            self.line(&line, out);
        }
        self.scratch = scratch;
    }

    /// End of input: dispatches an event that was not followed by a blank line.
    pub(crate) fn finish(&mut self, out: &mut Vec<SseEvent>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        self.lines.finish(&mut scratch);
        for line in scratch.drain(..) {
            self.line(&line, out);
        }
        self.line("", out);
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                let event = if self.event.is_empty() { "message".to_string() } else { std::mem::take(&mut self.event) };
                out.push(SseEvent { event, data: std::mem::take(&mut self.data) });
            }
            self.event.clear();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {} // id, retry: not used by model providers
        }
    }
}

/// Decodes newline-delimited JSON into its non-blank lines.
#[derive(Debug, Default)]
pub(crate) struct NdjsonDecoder {
    lines: LineSplitter,
}

impl NdjsonDecoder {
    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        let start = out.len();
        self.lines.push(bytes, out);
        retain_non_blank(out, start);
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<String>) {
        let start = out.len();
        self.lines.finish(out);
        retain_non_blank(out, start);
    }
}

fn retain_non_blank(out: &mut Vec<String>, start: usize) {
    let mut idx = start;
    while idx < out.len() {
        if out[idx].trim().is_empty() {
            out.remove(idx);
        } else {
            idx += 1;
        }
    }
}

/// Why a stream could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamFault {
    /// A frame that is not what the protocol promises.
    Malformed(String),
    /// The provider reported an error inside the stream.
    Upstream(String),
}

/// Turns a provider's stream bytes into text deltas and, at the end, the whole response.
pub(crate) trait StreamAssembler {
    /// Feeds raw bytes; text deltas are appended to `tokens`.
    fn push(&mut self, bytes: &[u8], tokens: &mut Vec<String>) -> Result<(), StreamFault>;
    /// End of input (flushes a last unterminated frame).
    fn end(&mut self, tokens: &mut Vec<String>) -> Result<(), StreamFault>;
    /// Whether the protocol's final frame arrived.
    fn is_done(&self) -> bool;
    /// What has been assembled so far.
    fn assembled(&mut self) -> Assembled;
}

/// A response before it is stamped with provider and latency: the common result of parsing a
/// whole body and of assembling a stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Assembled {
    pub content: String,
    pub reasoning: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    pub model: Option<String>,
    pub finish_reason: Option<String>,
}

impl Assembled {
    pub(crate) fn into_response(self, provider: &str, configured_model: &str, latency: Duration) -> ChatResponse {
        ChatResponse {
            content: self.content,
            tool_calls: self.tool_calls,
            usage: self.usage,
            model: self.model.filter(|model| !model.is_empty()).unwrap_or_else(|| configured_model.to_string()),
            provider: provider.to_string(),
            reasoning_content: (!self.reasoning.is_empty()).then_some(self.reasoning),
            finish_reason: self.finish_reason,
            latency,
        }
    }
}

/// Tool calls whose pieces arrive spread over many stream frames, keyed by their index.
#[derive(Debug, Default)]
pub(crate) struct ToolCallParts {
    parts: Vec<(u64, String, String, String)>, // (index, id, name, argument text)
}

impl ToolCallParts {
    /// Adds a piece: the id and name arrive once (usually first), arguments in fragments.
    pub(crate) fn add(&mut self, index: u64, id: Option<&str>, name: Option<&str>, arguments: Option<&str>) {
        let slot = match self.parts.iter().position(|part| part.0 == index) {
            Some(slot) => slot,
            None => {
                self.parts.push((index, String::new(), String::new(), String::new()));
                self.parts.len() - 1
            }
        };
        let part = &mut self.parts[slot];
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            part.1 = id.to_string();
        }
        if let Some(name) = name.filter(|name| !name.is_empty()) {
            part.2.push_str(name);
        }
        if let Some(arguments) = arguments {
            part.3.push_str(arguments);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The whole calls, in index order; missing ids become `call_<index>`.
    pub(crate) fn finish(&self) -> Vec<ToolCall> {
        let mut parts: Vec<&(u64, String, String, String)> = self.parts.iter().collect();
        parts.sort_by_key(|part| part.0);
        parts
            .into_iter()
            .map(|(index, id, name, arguments)| {
                let id = if id.is_empty() { format!("call_{index}") } else { id.clone() };
                ToolCall::from_argument_text(id, name.clone(), arguments)
            })
            .collect()
    }
}

/// Test helper: feeds `bytes` split at `cuts` (sorted offsets) to an assembler.
#[cfg(test)]
pub(crate) fn feed_split<A: StreamAssembler>(
    assembler: &mut A,
    bytes: &[u8],
    cuts: &[usize],
) -> Result<(Vec<String>, Assembled), StreamFault> {
    let mut tokens = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let cut = cut.clamp(start, bytes.len());
        assembler.push(&bytes[start..cut], &mut tokens)?;
        start = cut;
    }
    assembler.end(&mut tokens)?;
    Ok((tokens, assembler.assembled()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split_points(len: usize) -> impl Strategy<Value = Vec<usize>> {
        proptest::collection::vec(0..=len, 0..12).prop_map(|mut cuts| {
            cuts.sort_unstable();
            cuts
        })
    }

    fn sse_all(bytes: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            let cut = cut.clamp(start, bytes.len());
            decoder.push(&bytes[start..cut], &mut out);
            start = cut;
        }
        decoder.finish(&mut out);
        out
    }

    #[test]
    fn sse_fields_comments_and_multiline_data() {
        let text = ": keep-alive\r\nevent: ping\r\ndata: {}\r\n\r\ndata: a\ndata: b\n\nid: 7\ndata:c\n\n";
        let events = sse_all(text.as_bytes(), &[]);
        assert_eq!(
            events,
            vec![
                SseEvent { event: "ping".into(), data: "{}".into() },
                SseEvent { event: "message".into(), data: "a\nb".into() },
                SseEvent { event: "message".into(), data: "c".into() },
            ]
        );
    }

    #[test]
    fn sse_last_event_without_blank_line_is_dispatched_at_the_end() {
        let events = sse_all(b"data: [DONE]", &[]);
        assert_eq!(events, vec![SseEvent { event: "message".into(), data: "[DONE]".into() }]);
    }

    #[test]
    fn ndjson_skips_blank_lines() {
        let mut decoder = NdjsonDecoder::default();
        let mut out = Vec::new();
        decoder.push(b"{\"a\":1}\n\n  \n{\"b\"", &mut out);
        decoder.push(b":2}", &mut out);
        decoder.finish(&mut out);
        assert_eq!(out, vec!["{\"a\":1}".to_string(), "{\"b\":2}".to_string()]);
    }

    #[test]
    fn tool_call_parts_assemble_by_index_and_keep_raw_text() {
        let mut parts = ToolCallParts::default();
        parts.add(1, Some("b"), Some("second"), Some("{\"x\""));
        parts.add(0, Some("a"), Some("first"), Some(""));
        parts.add(1, None, None, Some(":1}"));
        parts.add(2, None, Some("broken"), Some("{nope"));
        let calls = parts.finish();
        assert_eq!(calls[0].name, "first");
        assert_eq!(calls[0].arguments, serde_json::json!({}));
        assert_eq!(calls[1].arguments, serde_json::json!({"x": 1}));
        assert_eq!(calls[2].id, "call_2");
        assert_eq!(calls[2].raw_arguments.as_deref(), Some("{nope"));
    }

    proptest! {
        #[test]
        fn sse_events_do_not_depend_on_chunk_splits(
            datas in proptest::collection::vec("[^\r\n]{0,20}", 1..6),
            crlf in any::<bool>(),
            cuts in split_points(300),
        ) {
            let newline = if crlf { "\r\n" } else { "\n" };
            let text: String = datas.iter().map(|data| format!("event: e{newline}data: é{data}{newline}{newline}")).collect();
            let bytes = text.as_bytes();
            let whole = sse_all(bytes, &[]);
            prop_assert_eq!(sse_all(bytes, &cuts), whole.clone());
            prop_assert_eq!(whole.len(), datas.len());
            for (event, data) in whole.iter().zip(&datas) {
                prop_assert_eq!(&event.data, &format!("é{data}"));
            }
        }

        #[test]
        fn ndjson_lines_do_not_depend_on_chunk_splits(
            values in proptest::collection::vec(any::<i64>(), 1..8),
            cuts in split_points(200),
        ) {
            let text: String = values.iter().map(|value| format!("{{\"v\":{value},\"s\":\"ü\"}}\n")).collect();
            let bytes = text.as_bytes();
            let mut decoder = NdjsonDecoder::default();
            let mut out = Vec::new();
            let mut start = 0;
            for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
                let cut = cut.clamp(start, bytes.len());
                decoder.push(&bytes[start..cut], &mut out);
                start = cut;
            }
            decoder.finish(&mut out);
            let expected: Vec<String> = text.lines().map(str::to_string).collect();
            prop_assert_eq!(out, expected);
        }
    }
}
