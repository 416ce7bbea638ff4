use serde_json::json;

use super::*;
use crate::chat::ToolResult;

fn call(id: &str, name: &str, args: Value) -> Part {
    Part::ToolCall(ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: args.as_object().cloned().unwrap(),
    })
}

fn result(id: &str, content: &str) -> Part {
    Part::ToolResult(ToolResult {
        call_id: id.into(),
        name: String::new(),
        content: content.into(),
        is_error: false,
    })
}

/// The digest of the assistant turn an answer made, its text fed in one piece.
fn answer_turn(text: &str, calls: &[ToolCall]) -> Digest {
    let mut turn = AnswerTurn::default();
    turn.text(text);
    turn.finish(calls.iter())
}

fn loop_history() -> Vec<Message> {
    vec![
        Message::text(Role::System, "be brief"),
        Message::text(Role::User, "read a"),
        Message {
            role: Role::Assistant,
            parts: vec![Part::Text("Reading.".into()), call("c1", "Read", json!({"b": 1, "a": "x"}))],
        },
        Message { role: Role::Tool, parts: vec![result("c1", "AAA")] },
    ]
}

#[test]
fn turns_group_each_side_and_leave_system_messages_out() {
    let mut messages = loop_history();
    messages.push(Message { role: Role::Tool, parts: vec![result("c2", "BBB")] });
    let turns = turns(&messages);
    assert_eq!(turns.assistant, [false, true, false]);
    assert_eq!(turns.starts, [1, 2, 3]);
}

#[test]
fn an_answer_matches_the_assistant_turn_the_client_echoes() {
    // Recorded: the text as streamed, the call with its arguments in another key order.
    let mut args = serde_json::Map::new();
    args.insert("a".into(), json!("x"));
    args.insert("b".into(), json!(1));
    let recorded =
        answer_turn("Reading.\n", &[ToolCall { id: "toolu_9".into(), name: "Read".into(), arguments: args }]);
    assert_eq!(turns(&loop_history()).digests[1], recorded, "ids and white space do not count");
    // The client split the text into two messages: the same turn.
    let split = vec![
        Message::text(Role::Assistant, "  Reading."),
        Message { role: Role::Assistant, parts: vec![call("x", "Read", json!({"a": "x", "b": 1}))] },
    ];
    assert_eq!(turns(&split).digests[0], recorded);
    let other = answer_turn("Reading.", &[]);
    assert_ne!(turns(&loop_history()).digests[1], other, "a call left out is another turn");
}

#[test]
fn an_edited_turn_and_a_changed_frame_differ() {
    let history = loop_history();
    let mut edited = history.clone();
    edited[1] = Message::text(Role::User, "read b");
    assert_ne!(turns(&history).digests[0], turns(&edited).digests[0]);
    let request = |messages: Vec<Message>| chat::Request {
        model: "kimi".into(),
        mode: chat::Mode::default(),
        messages,
        conversation: chat::Conversation::Ephemeral,
        stream: false,
        tools: Vec::new(),
        tool_choice: chat::ToolChoice::Auto,
        parallel_tool_calls: true,
        output: chat::Output::Text,
        tool_prompt: None,
    };
    let mut changed = history.clone();
    changed[0] = Message::text(Role::System, "be long");
    assert_eq!(frame(&request(history.clone())), frame(&request(edited)), "the frame is the system part");
    assert_ne!(frame(&request(history)), frame(&request(changed)));
}

#[test]
fn results_get_their_tool_names_before_the_history_is_cut() {
    let mut messages = loop_history();
    name_results(&mut messages);
    let Part::ToolResult(result) = &messages[3].parts[0] else { panic!() };
    assert_eq!(result.name, "Read");
}

#[test]
fn the_recorder_keeps_what_reaches_the_dialect() {
    let mut record = Record::default();
    let mut inner = crate::chat::Collect(Vec::new());
    let mut recorder = Recorder::new(&mut record, &mut inner);
    let _ = recorder.send(Event::ConversationId("c~1".into()));
    let _ = recorder.send(Event::Heartbeat);
    assert!(!recorder.record.delivered);
    let _ = recorder.send(Event::Text("hi".into()));
    assert_eq!((record.conversation.as_deref(), record.delivered), (Some("c~1"), true));
    assert_eq!(record.answer.clone().finish([].iter()), answer_turn("hi", &[]));
    assert_eq!(inner.0.len(), 3);
}

#[test]
fn parts_that_would_read_alike_joined_stay_apart() {
    let user = |parts: Vec<Part>| turns(&[Message { role: Role::User, parts }]).digests[0];
    let text = |t: &str| Part::Text(t.into());
    assert_ne!(user(vec![text("ab"), text("c")]), user(vec![text("a"), text("bc")]));
    assert_ne!(user(vec![text("a b")]), user(vec![text("a"), text("b")]));
    assert_ne!(user(vec![text("AAA")]), user(vec![result("c1", "AAA")]), "a text is not a tool result");
    let mut failed = result("c1", "AAA");
    if let Part::ToolResult(r) = &mut failed {
        r.is_error = true;
    }
    assert_ne!(user(vec![result("c1", "AAA")]), user(vec![failed]), "the error flag counts");
    assert_eq!(user(vec![text(" a \n b ")]), user(vec![text("a b")]), "white space runs do not count");
    let assistant = |parts: Vec<Part>| turns(&[Message { role: Role::Assistant, parts }]).digests[0];
    assert_ne!(assistant(vec![text("a")]), user(vec![text("a")]), "the side counts");
    let calls = |a: Value, b: Value| assistant(vec![call("1", "Read", a), call("2", "Read", b)]);
    assert_ne!(
        calls(json!({"x": 1}), json!({"x": 2})),
        calls(json!({"x": 2}), json!({"x": 1})),
        "call order counts"
    );
}

#[test]
fn an_answer_streamed_in_pieces_matches_its_echo_at_every_split() {
    let text = " Reading  the\tfile.\n\nThen  \u{2003}the next one ";
    let echoed = turns(&[Message::text(Role::Assistant, text.trim())]).digests[0];
    let splits: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
    for &first in &splits {
        for &second in splits.iter().filter(|&&s| s >= first) {
            let mut turn = AnswerTurn::default();
            [&text[..first], &text[first..second], &text[second..]].iter().for_each(|piece| turn.text(piece));
            assert_eq!(turn.finish([].iter()), echoed, "pieces split at {first} and {second}");
        }
    }
    assert_eq!(answer_turn("", &[]), turns(&[Message::text(Role::Assistant, "  ")]).digests[0]);
}
