use serde_json::json;

use super::*;
use crate::chat::{Collect, Mode, ToolCall, ToolChoice};

fn person() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "height": {"type": "number"},
            "role": {"enum": ["admin", "user"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "address": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": false
            },
            "nickname": {"type": ["string", "null"]}
        },
        "required": ["name", "age"],
        "additionalProperties": false
    })
}

fn schema_output(schema: Value) -> Output {
    Output::JsonSchema { name: "person".into(), schema }
}

fn request(output: Output, messages: Vec<Message>) -> chat::Request {
    chat::Request {
        model: "kimi".into(),
        mode: Mode::default(),
        messages,
        conversation: Conversation::Ephemeral,
        stream: false,
        tools: Vec::new(),
        tool_choice: ToolChoice::Auto,
        parallel_tool_calls: true,
        output,
        tool_prompt: None,
    }
}

#[test]
fn a_valid_value_has_no_problems() {
    let value = json!({"name": "Ann", "age": 30, "height": 1.7, "role": "admin", "tags": ["a"],
                       "address": {"city": "Oslo"}, "nickname": null});
    assert_eq!(validate(&value, &person()), Vec::<String>::new());
}

#[test]
fn types_required_and_extra_properties_are_reported_with_their_path() {
    let value = json!({"age": "30", "extra": 1, "address": {"zip": "1"}});
    let problems = validate(&value, &person());
    assert!(problems.contains(&"$: the required property \"name\" is missing".to_string()), "{problems:?}");
    assert!(problems.contains(&"$.age: expected integer, got string".to_string()), "{problems:?}");
    assert!(problems.contains(&"$: the property \"extra\" is not allowed".to_string()), "{problems:?}");
    assert!(problems.contains(&"$.address: the required property \"city\" is missing".to_string()));
    assert!(problems.contains(&"$.address: the property \"zip\" is not allowed".to_string()));
}

#[test]
fn integer_is_a_number_without_a_fraction() {
    let integer = json!({"type": "integer"});
    assert!(validate(&json!(3), &integer).is_empty());
    assert!(validate(&json!(3.0), &integer).is_empty(), "1.0 is an integer in JSON Schema");
    assert_eq!(validate(&json!(3.5), &integer), vec!["$: expected integer, got number"]);
    assert!(validate(&json!(3), &json!({"type": "number"})).is_empty(), "an integer is a number");
    assert_eq!(validate(&json!("3"), &json!({"type": "number"})), vec!["$: expected number, got string"]);
}

#[test]
fn enum_const_and_nullable() {
    let schema = json!({"enum": ["a", 1, null]});
    assert!(validate(&json!(1), &schema).is_empty() && validate(&Value::Null, &schema).is_empty());
    assert_eq!(validate(&json!("b"), &schema), vec!["$: must be one of \"a\", 1, null"]);
    assert_eq!(validate(&json!(2), &json!({"const": 1})), vec!["$: must be 1"]);
    let nullable = json!({"type": ["string", "null"]});
    assert!(validate(&Value::Null, &nullable).is_empty());
    assert_eq!(validate(&json!(1), &nullable), vec!["$: expected string or null, got integer"]);
    assert!(validate(&Value::Null, &json!({"type": "string", "nullable": true})).is_empty());
}

#[test]
fn arrays_check_each_item() {
    let schema = json!({"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}});
    assert!(validate(&json!([{"n": 1}, {"n": 2}]), &schema).is_empty());
    assert_eq!(
        validate(&json!([{"n": 1}, {"n": "x"}, {}]), &schema),
        vec!["$[1].n: expected integer, got string", "$[2]: the required property \"n\" is missing"]
    );
    assert_eq!(validate(&json!({"n": 1}), &schema), vec!["$: expected array, got object"]);
}

#[test]
fn any_of_one_of_and_all_of() {
    let any = json!({"anyOf": [{"type": "string"}, {"type": "integer"}]});
    assert!(validate(&json!("x"), &any).is_empty() && validate(&json!(1), &any).is_empty());
    assert_eq!(validate(&json!(true), &any), vec!["$: matches none of the 2 anyOf schemas"]);
    let one = json!({"oneOf": [{"type": "number"}, {"type": "integer"}]});
    assert!(validate(&json!(1.5), &one).is_empty());
    assert_eq!(validate(&json!(1), &one), vec!["$: matches 2 of the oneOf schemas, not exactly one"]);
    let all = json!({"allOf": [{"required": ["a"]}, {"required": ["b"]}]});
    assert_eq!(validate(&json!({"a": 1}), &all), vec!["$: the required property \"b\" is missing"]);
}

#[test]
fn local_refs_are_followed_as_pydantic_writes_them() {
    let schema = json!({
        "$defs": {"Step": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}},
        "type": "object",
        "properties": {"steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}}},
        "required": ["steps"]
    });
    assert!(validate(&json!({"steps": [{"n": 1}]}), &schema).is_empty());
    assert_eq!(
        validate(&json!({"steps": [{}]}), &schema),
        vec!["$.steps[0]: the required property \"n\" is missing"]
    );
    let broken = json!({"$ref": "#/$defs/Missing"});
    assert_eq!(
        validate(&json!(1), &broken),
        vec!["$: the schema's $ref \"#/$defs/Missing\" cannot be followed"]
    );
    let endless = json!({"$ref": "#"});
    assert_eq!(validate(&json!(1), &endless), vec!["$: the schema nests too deeply to check"]);
}

#[test]
fn unknown_keywords_and_boolean_schemas() {
    assert!(validate(&json!("x"), &json!({"type": "string", "format": "email", "minLength": 9})).is_empty());
    assert!(validate(&json!(1), &json!(true)).is_empty());
    assert_eq!(validate(&json!(1), &json!(false)), vec!["$: no value is allowed here"]);
    let extra = json!({"type": "object", "additionalProperties": {"type": "integer"}});
    assert_eq!(validate(&json!({"a": 1, "b": "x"}), &extra), vec!["$.b: expected integer, got string"]);
}

#[test]
fn unfencing_finds_the_json() {
    assert_eq!(unfence("```json\n{\"a\": 1}\n```"), "{\"a\": 1}");
    assert_eq!(unfence("  ```\n[1, 2]\n```\n"), "[1, 2]");
    assert_eq!(unfence("Here it is:\n```json\n{\"a\": 1}\n```\nAnything else?"), "{\"a\": 1}");
    assert_eq!(unfence("Sure! {\"a\": {\"b\": 2}} Hope that helps."), "{\"a\": {\"b\": 2}}");
    assert_eq!(unfence("```json\n{\"a\": 1}"), "{\"a\": 1}", "an unclosed fence");
    assert_eq!(unfence("no json here"), "no json here");
}

#[test]
fn parse_and_check_give_the_json_text() {
    assert_eq!(parse(" \"just a string\" ").unwrap().1, "\"just a string\"");
    assert_eq!(parse("```json\n{\"a\": 1}\n```").unwrap(), (json!({"a": 1}), "{\"a\": 1}"));
    assert!(parse("I cannot do that.").unwrap_err().starts_with("the answer is not JSON"));
    let output = schema_output(person());
    assert_eq!(
        check("```json\n{\"name\": \"A\", \"age\": 1}\n```", &output),
        Ok("{\"name\": \"A\", \"age\": 1}")
    );
    assert_eq!(
        check("{\"name\": \"A\"}", &output),
        Err(vec!["$: the required property \"age\" is missing".into()])
    );
    assert_eq!(check("[1]", &Output::Json), Ok("[1]"));
    assert!(check("prose", &Output::Json).is_err());
}

#[test]
fn settle_keeps_only_the_json_and_leaves_tool_calls_alone() {
    let mut answer =
        Answer { text: "```json\n{\"name\": \"A\", \"age\": 1}\n```".into(), ..Answer::default() };
    assert_eq!(settle(&mut answer, &schema_output(person())), Ok(()));
    assert_eq!(answer.text, "{\"name\": \"A\", \"age\": 1}");
    let mut prose = Answer { text: "No.".into(), ..Answer::default() };
    assert!(settle(&mut prose, &Output::Json).is_err());
    assert_eq!(prose.text, "No.", "the text stays as it is");
    let call = ToolCall { id: String::new(), name: "f".into(), arguments: serde_json::Map::new() };
    let mut called = Answer { calls: vec![call], ..Answer::default() };
    assert_eq!(settle(&mut called, &Output::Json), Ok(()));
    assert_eq!(settle(&mut prose, &Output::Text), Ok(()));
}

#[test]
fn the_instruction_is_the_last_part_of_the_newest_turn() {
    let messages = vec![Message::text(Role::System, "be brief"), Message::text(Role::User, "who?")];
    let prepared = prepare(request(schema_output(json!({"type": "object"})), messages.clone()));
    assert_eq!(prepared.messages.len(), 2);
    let last = prepared.messages[1].joined_text();
    assert!(last.starts_with("who?\nReply with one valid JSON value only"), "{last}");
    assert!(last.ends_with("JSON Schema (\"person\"): {\"type\":\"object\"}"), "{last}");
    assert_eq!(prepare(request(Output::Text, messages.clone())).messages, messages);
    let after_answer = vec![Message::text(Role::User, "q"), Message::text(Role::Assistant, "a")];
    let prepared = prepare(request(Output::Json, after_answer));
    assert_eq!(prepared.messages[2].role, Role::User);
    assert_eq!(instruction(&Output::Json).as_deref(), Some(INSTRUCTION));
}

#[test]
fn the_correction_carries_the_answer_and_its_problems() {
    let original = request(Output::Json, vec![Message::text(Role::User, "q")]);
    let answer = Answer { text: "not json".into(), conversation_id: Some("c1".into()), ..Answer::default() };
    let retry = correction(&original, &answer, &["$.a: expected integer, got string".into()]);
    assert_eq!(retry.messages[1], Message::text(Role::Assistant, "not json"));
    let asked = retry.messages[2].joined_text();
    assert!(asked.contains("- $.a: expected integer, got string") && asked.ends_with("corrected JSON only."));
    assert_eq!(retry.conversation, Conversation::Ephemeral, "a new chat");
    let kept = chat::Request { conversation: Conversation::Keep, ..original };
    assert_eq!(correction(&kept, &answer, &[]).conversation, Conversation::Continue("c1".into()));
}

fn streamed(output: &Output, pieces: &[&str]) -> (String, Vec<String>) {
    let mut sink = Unfenced::new(output, Collect::default());
    for piece in pieces {
        sink.send(Event::Text(piece.to_string())).go().unwrap();
    }
    sink.send(Event::Finish(Finish::Stop)).go().unwrap();
    let problems = sink.problems().to_vec();
    let events = sink.inner.0;
    assert_eq!(events.last(), Some(&Event::Finish(Finish::Stop)));
    let text = events
        .iter()
        .map(|e| match e {
            Event::Text(text) => {
                assert!(!text.is_empty(), "no empty pieces");
                text.as_str()
            }
            _ => "",
        })
        .collect();
    (text, problems)
}

#[test]
fn a_stream_drops_the_fence_at_every_split() {
    let answer = "```json\n{\"a\": \"x`y\"}\n```\nDone.";
    for at in 0..answer.len() {
        let (text, problems) = streamed(&Output::Json, &[&answer[..at], &answer[at..]]);
        assert_eq!(text, "{\"a\": \"x`y\"}", "split at {at}");
        assert!(problems.is_empty());
    }
    let pieces: Vec<String> = answer.chars().map(String::from).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    assert_eq!(streamed(&Output::Json, &pieces).0, "{\"a\": \"x`y\"}");
}

#[test]
fn a_stream_without_a_fence_passes_as_it_comes() {
    let mut sink = Unfenced::new(&Output::Json, Collect::default());
    sink.send(Event::Text("  {\"a\":".into())).go().unwrap();
    assert_eq!(sink.inner.0, vec![Event::Text("{\"a\":".into())], "sent at once, leading space dropped");
    assert_eq!(streamed(&Output::Json, &["[1,", " 2]"]), ("[1, 2]".into(), vec![]));
    let (text, problems) = streamed(&Output::Json, &["I can", "not."]);
    assert_eq!(text, "I cannot.");
    assert!(problems[0].starts_with("the answer is not JSON"), "{problems:?}");
    let (_, problems) = streamed(&schema_output(person()), &["{\"name\": \"A\"}"]);
    assert_eq!(problems, vec!["$: the required property \"age\" is missing"]);
}

#[test]
fn a_text_stream_and_tool_calls_pass_unchanged() {
    assert_eq!(streamed(&Output::Text, &["```json\n", "{}\n```"]), ("```json\n{}\n```".into(), vec![]));
    let mut sink = Unfenced::new(&Output::Json, Collect::default());
    let call = ToolCall { id: String::new(), name: "f".into(), arguments: serde_json::Map::new() };
    sink.send(Event::ToolCall(call.clone())).go().unwrap();
    sink.send(Event::Finish(Finish::ToolCalls)).go().unwrap();
    assert!(sink.problems().is_empty(), "an answer of tool calls is not checked");
    assert_eq!(sink.inner.0, vec![Event::ToolCall(call), Event::Finish(Finish::ToolCalls)]);
}

#[test]
fn explanations_are_one_sentence() {
    assert_eq!(
        explanation(&["a".into(), "b".into()]),
        "The model's answer is not the JSON that was asked for: a; b"
    );
}
