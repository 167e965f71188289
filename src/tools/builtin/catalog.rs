//! The catalogue of the 17 built-in tools: names, descriptions and JSON-Schema parameters.
//!
//! A table, in REFERENCE.md §4.2's order (the order `GET /v1/tools/builtin` lists them). The
//! schemas are what arguments are validated against and what the model is shown, so they are
//! pinned by a snapshot test. `send_message` (the reference's 18th, v0.40) is deliberately
//! absent: API.md's `count` is 17.

use serde_json::json;

use crate::tools::BuiltinInfo;

/// The 17 built-ins, in listing order.
pub(crate) fn catalog() -> Vec<BuiltinInfo> {
    let tool = |name, description, parameters| BuiltinInfo { name, description, parameters };
    vec![
        tool(
            "datetime_now",
            "Get the current date and time with optional timezone",
            json!({"type": "object", "properties": {
                "timezone": {"type": "string", "description": "Timezone name (e.g. 'UTC', 'US/Eastern')"}
            }}),
        ),
        tool(
            "json_transform",
            "Transform JSON data with a Jinja template that renders JSON",
            json!({"type": "object", "properties": {
                "data": {"description": "The input data, available to the template as `data`"},
                "template": {"type": "string", "description": "A Jinja template whose output is JSON, e.g. '{\"n\": {{ data.items | length }}}'"}
            }, "required": ["data", "template"]}),
        ),
        tool(
            "cache_store",
            "Store and retrieve values in a key/value cache that persists across sessions",
            json!({"type": "object", "properties": {
                "action": {"type": "string", "enum": ["get", "set", "delete"], "description": "What to do with the key"},
                "key": {"type": "string", "minLength": 1, "maxLength": 256, "description": "The key"},
                "value": {"description": "The value to store (action 'set')"},
                "ttl": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds until the value expires (action 'set'); default: never"}
            }, "required": ["action", "key"]}),
        ),
        tool(
            "http_request",
            "Make an HTTP request to a URL and return the status, headers and body",
            json!({"type": "object", "properties": {
                "method": {"type": "string", "enum": ["GET", "POST", "PUT", "DELETE", "PATCH"], "description": "HTTP method"},
                "url": {"type": "string", "description": "The URL (http or https)"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Request headers"},
                "body": {"description": "Request body: a string, or JSON to send as application/json"}
            }, "required": ["method", "url"]}),
        ),
        tool(
            "graphql_query",
            "Run a GraphQL query against an endpoint",
            json!({"type": "object", "properties": {
                "endpoint": {"type": "string", "description": "The GraphQL endpoint URL"},
                "query": {"type": "string", "description": "The GraphQL query or mutation"},
                "variables": {"type": "object", "description": "Query variables"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Request headers"}
            }, "required": ["endpoint", "query"]}),
        ),
        tool(
            "web_search",
            "Search the web for current information",
            json!({"type": "object", "properties": {
                "query": {"type": "string", "minLength": 1, "description": "The search query"},
                "max_results": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5, "description": "Maximum number of results"}
            }, "required": ["query"]}),
        ),
        tool(
            "web_scrape",
            "Fetch a web page and return its readable text",
            json!({"type": "object", "properties": {
                "url": {"type": "string", "description": "The page URL (http or https)"},
                "max_length": {"type": "integer", "minimum": 1, "default": 10000, "description": "Maximum characters of text to return"}
            }, "required": ["url"]}),
        ),
        tool(
            "wikipedia",
            "Get the summary of a Wikipedia article",
            json!({"type": "object", "properties": {
                "topic": {"type": "string", "minLength": 1, "description": "The article title"},
                "language": {"type": "string", "pattern": "^[a-z][a-z-]{1,11}$", "default": "en", "description": "Wikipedia language code"}
            }, "required": ["topic"]}),
        ),
        tool(
            "read_file",
            "Read a text file from an allowed directory",
            json!({"type": "object", "properties": {
                "path": {"type": "string", "minLength": 1, "description": "Path of the file (relative paths start at the first allowed directory)"},
                "encoding": {"type": "string", "default": "utf-8", "description": "Text encoding (utf-8)"}
            }, "required": ["path"]}),
        ),
        tool(
            "write_file",
            "Write a text file in an allowed directory (parent directories are created)",
            json!({"type": "object", "properties": {
                "path": {"type": "string", "minLength": 1, "description": "Path of the file (relative paths start at the first allowed directory)"},
                "content": {"type": "string", "description": "The text to write"},
                "encoding": {"type": "string", "default": "utf-8", "description": "Text encoding (utf-8)"}
            }, "required": ["path", "content"]}),
        ),
        tool(
            "sql_query",
            "Run an SQL query against the configured SQLite database",
            json!({"type": "object", "properties": {
                "query": {"type": "string", "minLength": 1, "description": "One SQL statement; use ? placeholders for values"},
                "params": {"type": "array", "description": "Values for the ? placeholders"}
            }, "required": ["query"]}),
        ),
        tool(
            "send_webhook",
            "Send a JSON payload to a webhook URL",
            json!({"type": "object", "properties": {
                "url": {"type": "string", "description": "The webhook URL"},
                "payload": {"description": "The JSON payload"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Request headers"}
            }, "required": ["url", "payload"]}),
        ),
        tool(
            "send_slack",
            "Send a message to Slack through an incoming webhook",
            json!({"type": "object", "properties": {
                "message": {"type": "string", "minLength": 1, "description": "The message text"},
                "channel": {"type": "string", "description": "Channel override (e.g. '#alerts'), if the webhook allows it"}
            }, "required": ["message"]}),
        ),
        tool(
            "send_email",
            "Send an email through the configured SMTP server",
            json!({"type": "object", "properties": {
                "to": {"type": "string", "description": "Recipient address (several separated by commas)"},
                "subject": {"type": "string", "description": "Subject line"},
                "body": {"type": "string", "description": "Plain-text body"}
            }, "required": ["to", "subject", "body"]}),
        ),
        tool(
            "text_summarize",
            "Summarize a long text",
            json!({"type": "object", "properties": {
                "text": {"type": "string", "description": "The text to summarize"},
                "max_length": {"type": "integer", "minimum": 1, "default": 200, "description": "Approximate length of the summary in words"}
            }, "required": ["text"]}),
        ),
        tool(
            "rag_query",
            "Search the agent's knowledge base",
            json!({"type": "object", "properties": {
                "query": {"type": "string", "description": "What to search for"},
                "top_k": {"type": "integer", "minimum": 1, "default": 5, "description": "Maximum number of results"}
            }, "required": ["query"]}),
        ),
        tool(
            "rag_ingest",
            "Add a document to the agent's knowledge base",
            json!({"type": "object", "properties": {
                "document": {"type": "string", "description": "The document text"},
                "metadata": {"type": "object", "description": "Metadata stored with the document"}
            }, "required": ["document"]}),
        ),
    ]
}
