//! OpenAI's published schemas of the Responses API (`tests/openapi/responses-schemas.json`, its
//! source and date in the README beside it): every `/v1/responses` answer the support helpers
//! receive is checked against them (a response object, each stream event, an error body), so
//! every test that asks the Responses API checks what it got against the document.

use std::sync::OnceLock;

use jsonschema::{Draft, Validator};
use serde_json::{Value, json};

const DOCUMENT: &str = include_str!("../openapi/responses-schemas.json");

/// The schemas checked against, by name in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    Response,
    ResponseStreamEvent,
    ErrorResponse,
}

impl Schema {
    fn name(self) -> &'static str {
        match self {
            Schema::Response => "Response",
            Schema::ResponseStreamEvent => "ResponseStreamEvent",
            Schema::ErrorResponse => "ErrorResponse",
        }
    }

    fn validator(self) -> &'static Validator {
        static VALIDATORS: [OnceLock<Validator>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        VALIDATORS[self as usize].get_or_init(|| {
            let mut schema: Value = serde_json::from_str(DOCUMENT).expect("the pinned document is JSON");
            // The document uses `$recursiveRef` (draft 2019-09); `$ref` resolves within it.
            schema["$schema"] = json!("https://json-schema.org/draft/2019-09/schema");
            schema["$ref"] = json!(format!("#/components/schemas/{}", self.name()));
            jsonschema::options()
                .with_draft(Draft::Draft201909)
                .build(&schema)
                .unwrap_or_else(|e| panic!("the schema {} builds: {e}", self.name()))
        })
    }
}

/// What is wrong with `value` as a `schema`, if anything (every error, with where it is).
pub fn problems(schema: Schema, value: &Value) -> Vec<String> {
    schema.validator().iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

/// Panics unless `value` is a valid `schema`.
pub fn assert_valid(schema: Schema, value: &Value) {
    let problems = problems(schema, value);
    assert!(
        problems.is_empty(),
        "not a valid {schema:?} per OpenAI's OpenAPI document: {problems:#?}\n{value:#}"
    );
}

/// Whether `url` is the Responses API's.
pub fn is_responses(url: &str) -> bool {
    url.split('?').next().is_some_and(|path| path.ends_with("/v1/responses"))
}

/// Checks a whole answer of the Responses API: a response object on success, else an error
/// body.
pub fn check_answer(status: u16, body: &str) {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        panic!("a Responses answer that is not JSON ({status}): {body}");
    };
    let schema = if (200..300).contains(&status) { Schema::Response } else { Schema::ErrorResponse };
    assert_valid(schema, &value);
}

/// Checks each event of a Responses stream.
pub fn check_events<'a>(events: impl IntoIterator<Item = &'a str>) {
    for data in events {
        let value: Value = serde_json::from_str(data)
            .unwrap_or_else(|e| panic!("a stream event that is not JSON ({e}): {data}"));
        assert_valid(Schema::ResponseStreamEvent, &value);
    }
}
