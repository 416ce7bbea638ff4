//! The front door's tests: every form's cases (each grammar's file holds its own table) fed
//! whole, cut in two and three pieces at every point and at random, give the same outputs; text
//! is held back only while it may begin a call, and never beyond its bound. The helpers here are
//! shared by the grammars' tests.

use serde_json::json;

use super::k2_markers::{ARGUMENT_BEGIN, CALL_BEGIN, CALL_END, SECTION_END};
use super::*;

fn declared() -> Vec<(&'static str, Value)> {
    let string = json!({"type": "string"});
    vec![
        ("read", json!({"type": "object", "properties": {"path": string}})),
        ("write", json!({"type": "object", "properties": {"path": string, "content": string}})),
        (
            "run",
            json!({"type": "object", "properties": {
                "command": string,
                "timeout": {"type": "integer"},
                "ratio": {"type": "number"},
                "background": {"type": "boolean"},
                "args": {"type": "array", "items": string},
                "env": {"type": "object"},
                "note": {"type": ["string", "null"]},
                "retries": {"type": ["integer", "null"]},
            }, "required": ["command"]}),
        ),
    ]
}

/// Built once: the split tests make hundreds of thousands of parsers.
static DECLARED: std::sync::LazyLock<Vec<(&str, Value)>> = std::sync::LazyLock::new(declared);

pub(super) fn tool_parser() -> ToolParser {
    ToolParser::new(DECLARED.iter().map(|(name, schema)| (*name, schema)))
}

/// A parser of other declared tools.
pub(super) fn tool_parser_with(tools: &[(String, Value)]) -> ToolParser {
    ToolParser::new(tools.iter().map(|(name, schema)| (name.as_str(), schema)))
}

pub(super) fn text(text: &str) -> Output {
    Output::Text(text.to_string())
}

pub(super) fn call(name: &str, arguments: Value) -> Output {
    let Value::Object(arguments) = arguments else { panic!("arguments are an object") };
    Output::Call(ParsedCall { name: name.to_string(), arguments })
}

pub(super) fn read(path: &str) -> Output {
    call("read", json!({"path": path}))
}

pub(super) fn invoke_read(path: &str) -> String {
    format!("<invoke name=\"read\">\n<parameter name=\"path\">{path}</parameter>\n</invoke>")
}

pub(super) fn block(invokes: &[String]) -> String {
    format!("<tool_calls>\n{}\n</tool_calls>", invokes.join("\n"))
}

pub(super) fn compact(path: &str) -> String {
    format!("<invoke name=\"read\"><parameter name=\"path\">{path}</parameter></invoke>")
}

pub(super) fn as_text(input: &str) -> (String, Vec<Output>) {
    (input.to_string(), vec![text(input)])
}

/// Every input, and what it must come to however it is cut.
fn cases() -> Vec<(String, Vec<Output>)> {
    [
        tool_calls::tests::markup(),
        arguments::tests::parameters(),
        tool_calls::tests::drift(),
        k2_markers::tests::cases(),
        fence::tests::cases(),
        not_calls(),
        function_calls::tests::cases(),
        shell::tests::cases(),
        tool_tag::tests::cases(),
        k2_markers::tests::repaired(),
        near_miss_names(),
    ]
    .concat()
}

/// What looks like markup but is no call: text, unchanged.
fn not_calls() -> Vec<(String, Vec<Output>)> {
    vec![
        as_text(
            "<tool_calls>\n<invoke name=\"rm\">\n<parameter name=\"path\">/</parameter>\n</invoke>\n\
             </tool_calls>",
        ),
        as_text("<tool_calls>\n</tool_calls> and\n```xml\n<tool_calls></tool_calls>\n```"),
        as_text(
            "<tool_calls>\n<invoke name=\"read\">\n<param name=\"path\">a</param>\n</invoke>\n\
             </tool_calls> end",
        ),
        as_text("<invoke name=read><parameter name=\"path\">a</parameter></invoke>"),
        as_text("<invoke name=\"read\" id=\"1\"><parameter name=\"path\">a</parameter></invoke>"),
        as_text("Sure.\n<tool_calls>\n<invoke name=\"read\">\n<parameter name=\"path\">a"),
        as_text("a <"),
        as_text("tail `"),
        as_text("```"),
        as_text("see <tool_ca"),
        as_text("<|tool_calls_sec"),
        as_text(
            "a < b and <b>bold</b>, <i>it</i>, <invoked>, <tool>x</tool>, <|im_end|>, \
             </tool_calls>, <tool_calls>é",
        ),
        as_text(&"<".repeat(40)),
    ]
}

/// Names near a declared tool's, in every form: the declared tool's call; others text.
fn near_miss_names() -> Vec<(String, Vec<Output>)> {
    let invoke =
        |name: &str| format!("<invoke name=\"{name}\"><parameter name=\"path\">a</parameter></invoke>");
    let k2 = |name: &str| {
        format!(
            "<|tool_calls_section_begin|><|tool_call_begin|>{name}:0<|tool_call_argument_begin|>{{\"path\": \"a\"}}<|tool_call_end|>"
        )
    };
    let json =
        |name: &str| format!("```json\n{{\"name\": \"{name}\", \"arguments\": {{\"path\": \"a\"}}}}\n```");
    let tool = |name: &str| format!("<tool>{name}</tool><parameter>{{\"path\": \"a\"}}</parameter>");
    let forms: [&dyn Fn(&str) -> String; 4] = [&invoke, &k2, &json, &tool];
    let mut cases = Vec::new();
    for form in forms {
        for name in ["READ", "Read", "bridge_read", "functions.read", "claw_Read", "functions.bridge_read"] {
            let done = form(name).starts_with("```").then_some(Output::Done);
            cases.push((form(name), [read("a")].into_iter().chain(done).collect()));
        }
        for name in ["reader", "rea", "bridge_", "read_file", "FileRead", "bridge_rm", "re ad"] {
            cases.push(as_text(&form(name)));
        }
    }
    cases
}

/// What `input` comes to when pushed in pieces cut at these byte offsets, adjacent text merged.
fn outputs(input: &str, cuts: &[usize]) -> Vec<Output> {
    outputs_of(tool_parser(), input, cuts)
}

/// What `input` comes to in `parser` when pushed in pieces cut at these byte offsets, adjacent
/// text merged.
pub(super) fn outputs_of(mut parser: ToolParser, input: &str, cuts: &[usize]) -> Vec<Output> {
    let mut all = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain([input.len()].iter()) {
        let mut out = Vec::new();
        parser.push(&input[from..cut], &mut out);
        all.append(&mut out);
        from = cut;
    }
    parser.finish(&mut all);
    merged(all)
}

fn merged(outputs: Vec<Output>) -> Vec<Output> {
    let mut merged: Vec<Output> = Vec::new();
    for output in outputs {
        match (merged.last_mut(), output) {
            (_, Output::Text(text)) if text.is_empty() => {}
            (Some(Output::Text(last)), Output::Text(text)) => last.push_str(&text),
            (_, output) => merged.push(output),
        }
    }
    merged
}

fn boundaries(input: &str) -> Vec<usize> {
    input.char_indices().map(|(at, _)| at).chain([input.len()]).collect()
}

/// Inputs this short are also cut in three pieces at every pair of boundaries.
const THREE_PIECES: usize = 120;

#[test]
fn every_input_in_one_piece() {
    for (input, expected) in cases() {
        assert_eq!(outputs(&input, &[]), expected, "{input:?}");
    }
}

#[test]
fn every_split_in_two_pieces() {
    for (input, expected) in cases() {
        for cut in boundaries(&input) {
            assert_eq!(outputs(&input, &[cut]), expected, "{input:?} cut at {cut}");
        }
    }
}

#[test]
fn every_split_in_three_pieces_of_the_shorter_inputs() {
    for (input, expected) in cases().into_iter().filter(|(input, _)| input.len() <= THREE_PIECES) {
        let points = boundaries(&input);
        for (n, &a) in points.iter().enumerate() {
            for &b in &points[n..] {
                assert_eq!(outputs(&input, &[a, b]), expected, "{input:?} cut at {a} and {b}");
            }
        }
    }
}

/// A fixed-seed xorshift: a number below `bound`.
fn random(seed: u64) -> impl FnMut(usize) -> usize {
    let mut state = seed;
    move |bound| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    }
}

#[test]
fn random_splits() {
    let cases = cases();
    let mut next = random(0x2545_F491_4F6C_DD1D);
    for _ in 0..4000 {
        let (input, expected) = &cases[next(cases.len())];
        let points = boundaries(input);
        let mut cuts: Vec<usize> = (0..next(16)).map(|_| points[next(points.len())]).collect();
        cuts.sort_unstable();
        assert_eq!(&outputs(input, &cuts), expected, "{input:?} cut at {cuts:?}");
    }
}

/// Pieces of markup, put together at random: whatever they make, every cut gives what the
/// whole gives, and an answer of no call comes out as it went in.
#[test]
fn random_markup_gives_the_same_however_cut() {
    let pieces = [
        "<tool_calls>",
        "</tool_calls>",
        "<tool_call>",
        "</tool_call>",
        "<invoke name=\"read\">",
        "<invoke name=\"rm\">",
        "<invoke ",
        "</invoke>",
        "<parameter name=\"path\">",
        "</parameter>",
        "<parameter name=\"timeout\">",
        "```",
        "```json\n",
        "```xml\n",
        "```rust\n",
        "`",
        "\n",
        " ",
        "{\"name\": \"read\", \"arguments\": {\"path\": \"a\"}}",
        "[",
        "]",
        "{",
        "}",
        "\"",
        "\\",
        SECTION_BEGIN,
        CALL_BEGIN,
        "functions.read:0",
        ARGUMENT_BEGIN,
        CALL_END,
        SECTION_END,
        "<|",
        "a",
        "é",
        "<",
        ">",
        "<b>",
        "name",
        "=",
        "5",
    ];
    same_however_cut(&pieces, 0xDEAD_BEEF_CAFE_F00D);
}

/// Inputs of `pieces` put together at random give the same however cut; one of no call and no
/// notes comes out as it went in.
fn same_however_cut(pieces: &[&str], seed: u64) {
    let mut next = random(seed);
    for _ in 0..5000 {
        let input: String = (0..next(32)).map(|_| pieces[next(pieces.len())]).collect();
        let whole = outputs(&input, &[]);
        let points = boundaries(&input);
        let mut cuts: Vec<usize> = (0..next(8)).map(|_| points[next(points.len())]).collect();
        cuts.sort_unstable();
        assert_eq!(outputs(&input, &cuts), whole, "{input:?} cut at {cuts:?}");
        if input.contains("</antThinking>") {
            continue;
        }
        if let [Output::Text(text)] = &whole[..] {
            assert_eq!(text, &input);
        }
        if whole.is_empty() {
            assert_eq!(input, "");
        }
    }
}

/// The same for the other forms' pieces.
#[test]
fn random_forms_give_the_same_however_cut() {
    let pieces = [
        "<function_calls>",
        "</function_calls>",
        "<invoke name=\"Read\">",
        "</invoke>",
        "<parameter name=\"path\">",
        "</parameter>",
        "&amp;",
        "&#x41;",
        "&",
        ";",
        "<bash>",
        "</bash>",
        "<powershell>",
        "</powershell>",
        "<sh>",
        "</sh>",
        "<antThinking>",
        "</antThinking>",
        "<tool>",
        "</tool>",
        "read",
        "bridge_write",
        "<parameter>",
        "{\"path\": \"a\"}",
        "{“path”: “C:\\a”}",
        "“",
        "’",
        "\\",
        SECTION_BEGIN,
        CALL_BEGIN,
        "functions.READ:0",
        ARGUMENT_BEGIN,
        CALL_END,
        SECTION_END,
        "```",
        "\n",
        " ",
        "ls",
        "<",
        ">",
    ];
    same_however_cut(&pieces, 0x9E37_79B9_7F4A_7C15);
}

#[test]
fn notes_are_dropped_and_held_for_a_bounded_length() {
    let mut parser = tool_parser();
    assert_eq!(push(&mut parser, "Sure. <antThink"), [text("Sure. ")]);
    assert_eq!(push(&mut parser, "ing>the user wants <tool_calls>"), []);
    assert_eq!(push(&mut parser, " x</antThinking>"), []);
    assert_eq!(push(&mut parser, "\nDone"), [text("\nDone")]);
    let long = format!("<antThinking>{}</antThinking>", "x".repeat(MAX_FENCE));
    assert_eq!(pushed_in_pieces(&long, 1000, MAX_FENCE + 14), [text(&long)]);
    let fits = format!("<antThinking>{}</antThinking>after", "x".repeat(MAX_FENCE - 13));
    assert_eq!(pushed_in_pieces(&fits, 1000, MAX_FENCE + 14), [text("after")]);
}

/// Pushes one piece and returns what came out of it.
pub(super) fn push(parser: &mut ToolParser, piece: &str) -> Vec<Output> {
    let mut out = Vec::new();
    parser.push(piece, &mut out);
    out
}

#[test]
fn text_before_a_marker_goes_out_before_the_marker_ends() {
    let mut parser = tool_parser();
    assert_eq!(push(&mut parser, "Let me look. <tool_ca"), [text("Let me look. ")]);
    assert_eq!(push(&mut parser, "lls>\n<invoke name=\"read\">\n"), []);
    assert_eq!(push(&mut parser, "<parameter name=\"path\">a.rs</parameter>\n</invoke"), []);
    assert_eq!(push(&mut parser, ">"), [read("a.rs")], "the call goes out as its </invoke> closes");
    assert_eq!(push(&mut parser, "\n<invoke name=\"read\"><parameter name=\"path\">b</parameter>"), []);
    assert_eq!(push(&mut parser, "</invoke>\n</tool_"), [read("b")]);
    assert_eq!(push(&mut parser, "calls>"), [Output::Done]);
    assert_eq!(push(&mut parser, "\n<tool_result>made up</tool_result> and more"), []);
    assert_eq!(push(&mut parser, &block(&[invoke_read("c")])), []);
    let mut out = Vec::new();
    parser.finish(&mut out);
    assert_eq!(out, [], "nothing pushed after Done comes out");
}

#[test]
fn plain_text_passes_at_once() {
    let mut parser = tool_parser();
    assert_eq!(push(&mut parser, "no marker here"), [text("no marker here")]);
    assert_eq!(
        push(&mut parser, "a < b"),
        [text("a < b")],
        "a `<` that is no marker's start waits for nothing"
    );
    assert_eq!(push(&mut parser, " and <"), [text(" and ")]);
    assert_eq!(push(&mut parser, "b>"), [text("<b>")], "a held tail comes out unchanged");
    assert_eq!(
        push(&mut parser, "`x` and `"),
        [text("`x` and `")],
        "a backtick inside a line starts no fence"
    );
    assert_eq!(push(&mut parser, "\n`"), [text("\n")]);
    assert_eq!(push(&mut parser, "`"), []);
    assert_eq!(push(&mut parser, "x"), [text("``x")]);
}

/// Feeds `input` in pieces of `size` bytes (cut back to characters), checking what is held.
pub(super) fn pushed_in_pieces(input: &str, size: usize, max_held: usize) -> Vec<Output> {
    let mut parser = tool_parser();
    let mut out = Vec::new();
    let mut from = 0;
    while from < input.len() {
        let to = input.floor_char_boundary(from + size).max(from + 1);
        let to = input.ceil_char_boundary(to);
        parser.push(&input[from..to], &mut out);
        assert!(parser.held.len() <= max_held, "{input:.40?}: held {} at {to}", parser.held.len());
        from = to;
    }
    parser.finish(&mut out);
    merged(out)
}

#[test]
fn what_may_begin_a_marker_is_held_for_a_bounded_length() {
    for input in [
        format!("```{} json\n{{}}", " ".repeat(4 * MAX_MARKER)),
        format!("x\n{}", "`".repeat(4 * MAX_MARKER)),
        format!("<|tool_calls_section_begin{}", "|".repeat(4 * MAX_MARKER)),
    ] {
        assert_eq!(pushed_in_pieces(&input, 1, MAX_MARKER), [text(&input)], "{input:.40?}");
    }
    for (opening, tag) in [
        ("", format!("<invoke {}>", "x".repeat(4 * MAX_TAG))),
        ("<tool_calls><invoke name=\"read\">", format!("<parameter name=\"{}\">", "p".repeat(4 * MAX_TAG))),
        ("<|tool_calls_section_begin|><|tool_call_begin|>", "n".repeat(4 * MAX_TAG)),
    ] {
        let input = format!("{opening}{tag}");
        assert_eq!(pushed_in_pieces(&input, 1, opening.len() + MAX_TAG), [text(&input)], "{input:.40?}");
    }
}
