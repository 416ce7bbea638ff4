use serde_json::{Value, json};

use super::*;

fn elide_one(body: &[u8], key: &str, mark: &Mark) -> Option<(Vec<u8>, Mark)> {
    elide(body, key, std::slice::from_ref(mark)).map(|(index, elided, mark)| {
        assert_eq!(index, 0);
        (elided, mark)
    })
}

fn body(messages: &[Value], model: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"model": model, "messages": messages, "tools": [{"name": "Read"}]})).unwrap()
}

fn turn(n: usize) -> Vec<Value> {
    vec![
        json!({"role": "assistant", "content": [{"type": "tool_use", "id": format!("t{n}"), "input": {"p": "a\"]}"}}]}),
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": format!("t{n}"), "content": "x\\\n"}]}),
    ]
}

#[test]
fn the_span_is_where_serde_json_finds_the_messages() {
    let messages = [vec![json!({"role": "user", "content": "go [ { \" }"})], turn(1)].concat();
    let text = "{ \"model\" : \"k\", \"messages\" :\n [ ".to_string()
        + &messages.iter().map(Value::to_string).collect::<Vec<_>>().join(" ,\n ")
        + " ] , \"n\": -1.5e3, \"t\": [true, null, {}], \"o\": {\"a\": []} } ";
    let span = history_span(text.as_bytes(), "messages").unwrap();
    let items: Vec<Value> = span
        .items
        .iter()
        .map(|&(start, end)| serde_json::from_slice(&text.as_bytes()[start..end]).unwrap())
        .collect();
    assert_eq!(items, messages);
    assert_eq!(&text[span.open - 1..span.open], "[");
    assert_eq!(&text[span.close..span.close + 1], "]");
}

#[test]
fn bodies_it_will_not_vouch_for() {
    for text in [
        "[1]",
        "{\"messages\": {}}",
        "{\"messages\": [1], \"messages\": [2]}",
        "{\"messa\\u0067es\": [1]}",
        "{\"messages\": [1,]}",
        "{\"messages\": [1] x",
        "{\"messages\": [\"open",
        "{}",
    ] {
        assert_eq!(history_span(text.as_bytes(), "messages"), None, "{text}");
    }
    let deep = format!("{{\"messages\": [{}{}]}}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(history_span(deep.as_bytes(), "messages"), None, "too deep, and no stack overflow");
    assert_eq!(history_span(b"{\"messages\": []}", "messages").unwrap().items, []);
}

#[test]
fn a_continued_history_is_elided_to_its_new_messages() {
    let first = [vec![json!({"role": "user", "content": "go"})], turn(1)].concat();
    let before = body(&first, "k");
    let mark = Mark::of(&before, &history_span(&before, "messages").unwrap()).unwrap();
    let next = [first.clone(), turn(2)].concat();
    let after = body(&next, "k");
    let (elided, new_mark) = elide_one(&after, "messages", &mark).unwrap();
    let parsed: Value = serde_json::from_slice(&elided).unwrap();
    assert_eq!(parsed["messages"], json!(turn(2)));
    assert_eq!((&parsed["model"], &parsed["tools"][0]["name"]), (&json!("k"), &json!("Read")));
    assert_eq!(new_mark, Mark::of(&after, &history_span(&after, "messages").unwrap()).unwrap());
    let third = body(&[next, turn(3)].concat(), "k");
    assert_eq!(
        serde_json::from_slice::<Value>(&elide_one(&third, "messages", &new_mark).unwrap().0).unwrap()["messages"],
        json!(turn(3))
    );
}

#[test]
fn anything_else_is_parsed_whole() {
    let first = [vec![json!({"role": "user", "content": "go"})], turn(1)].concat();
    let before = body(&first, "k");
    let mark = Mark::of(&before, &history_span(&before, "messages").unwrap()).unwrap();
    let mut edited = first.clone();
    edited[0] = json!({"role": "user", "content": "GO"});
    let system = vec![json!({"role": "system", "content": "be long"})];
    for (why, other) in [
        ("the same history", before.clone()),
        ("an edited turn", body(&[edited, turn(2)].concat(), "k")),
        ("another model after the messages", body(&[first.clone(), turn(2)].concat(), "k2")),
        ("a new system message", body(&[first.clone(), system].concat(), "k")),
        ("a shorter history", body(&first[..1], "k")),
    ] {
        assert_eq!(elide_one(&other, "messages", &mark), None, "{why}");
    }
    let whole = body(&[first, turn(2)].concat(), "k");
    for cut in 0..whole.len() {
        let _ = elide_one(&whole[..cut], "messages", &mark);
    }
}

#[test]
fn of_several_sessions_the_one_the_body_continues() {
    let task = |n: usize| {
        vec![json!({"role": "user", "content": format!("task {n}")}), turn(n)[0].clone(), turn(n)[1].clone()]
    };
    let marks: Vec<Mark> = (1..=4)
        .map(|n| {
            let before = body(&[task(n), turn(10 + n)].concat()[..2 + n % 2], "k");
            Mark::of(&before, &history_span(&before, "messages").unwrap()).unwrap()
        })
        .collect();
    let third = [task(3), turn(13)].concat();
    let next = body(&[third[..3].to_vec(), turn(20)].concat(), "k");
    let (index, elided, _) = elide(&next, "messages", &marks).unwrap();
    assert_eq!(index, 2);
    assert_eq!(serde_json::from_slice::<Value>(&elided).unwrap()["messages"], json!(turn(20)));
    assert_eq!(elide(&body(&task(9), "k"), "messages", &marks), None);
}
