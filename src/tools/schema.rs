//! Argument validation against a tool's JSON Schema, with the `jsonschema` crate.
//!
//! Schemas are compiled once (when the registry is built, or when an MCP server lists its
//! tools), never per call. A schema that does not compile makes its tool unusable with a clear
//! message, rather than letting unchecked arguments through. The first error is reported with
//! the path of the offending field, so `POST /v1/tools/execute` can answer 422 with
//! `loc: ["body", "input", <field>]` and the model gets "field: message".

use std::sync::Arc;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

/// A compiled schema, or why it could not be compiled.
pub(crate) type Compiled = Result<Arc<jsonschema::Validator>, String>;

/// Where and why arguments failed validation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InvalidArgument {
    /// The path to the field (`["url"]`, `["headers", "x"]`, `[]` for the whole input).
    pub path: Vec<Value>,
    pub message: String,
}

impl InvalidArgument {
    /// The path as `a.b.0`, or `input` for the whole input.
    pub fn field(&self) -> String {
        if self.path.is_empty() {
            return "input".to_string();
        }
        self.path
            .iter()
            .map(|segment| segment.as_str().map(str::to_string).unwrap_or_else(|| segment.to_string()))
            .collect::<Vec<_>>()
            .join(".")
    }
}

pub(crate) fn compile(schema: &Value) -> Compiled {
    jsonschema::validator_for(schema).map(Arc::new).map_err(|error| error.to_string())
}

/// Checks `input`; the input must be an object whatever the schema says (tools take named
/// arguments).
pub(crate) fn check(validator: &jsonschema::Validator, input: &Value) -> Result<(), InvalidArgument> {
    if !input.is_object() {
        return Err(InvalidArgument { path: Vec::new(), message: "Input should be an object".to_string() });
    }
    let Some(error) = validator.iter_errors(input).next() else {
        return Ok(());
    };
    let mut path: Vec<Value> = error
        .instance_path()
        .as_str()
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let segment = segment.replace("~1", "/").replace("~0", "~");
            segment.parse::<u64>().map(Value::from).unwrap_or(Value::String(segment))
        })
        .collect();
    let message = match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().map(str::to_string).unwrap_or_else(|| property.to_string());
            path.push(Value::String(name));
            "Field required".to_string()
        }
        _ => error.to_string(),
    };
    Err(InvalidArgument { path, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_field() {
        let schema = json!({"type": "object", "properties": {
            "url": {"type": "string"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "n": {"type": "integer", "minimum": 1}
        }, "required": ["url"]});
        let validator = compile(&schema).unwrap();
        assert!(check(&validator, &json!({"url": "x"})).is_ok());
        let missing = check(&validator, &json!({})).unwrap_err();
        assert_eq!((missing.field(), missing.message.as_str()), ("url".to_string(), "Field required"));
        let wrong = check(&validator, &json!({"url": 5})).unwrap_err();
        assert_eq!(wrong.field(), "url");
        assert!(wrong.message.contains("string"), "{}", wrong.message);
        let nested = check(&validator, &json!({"url": "x", "headers": {"a/b": 1}})).unwrap_err();
        assert_eq!(nested.path, vec![json!("headers"), json!("a/b")]);
        let below = check(&validator, &json!({"url": "x", "n": 0})).unwrap_err();
        assert_eq!(below.field(), "n");
        let not_object = check(&validator, &json!([1])).unwrap_err();
        assert_eq!(not_object.field(), "input");
    }

    #[test]
    fn a_broken_schema_does_not_compile() {
        assert!(compile(&json!({"type": "strin"})).is_err());
    }
}
