//! The events of the Connect `Chat` stream (`docs/kimi-protocol.md` §4.4), parsed from one data
//! frame's JSON, the end-of-stream message, and the citation markers inside the answer text
//! (§4.5). Pure: bytes in, [`ConnectEvent`] out; text pieces in, answer text out.

use serde::Deserialize;
use serde::de::IgnoredAny;

#[derive(Debug, Clone, PartialEq)]
pub enum ConnectEvent {
    /// The chat's id (first frame of a new or continued chat).
    Chat { id: String },
    /// The assistant message being written; its id is the next turn's `parent_id`.
    AssistantMessage { id: String },
    /// A piece of the answer.
    Text(String),
    /// A piece of the reasoning.
    Thinking(String),
    /// Web search sources: (title, url).
    Citations(Vec<(String, String)>),
    /// The end of the events; an error may still follow.
    Done,
    /// An error, in a data frame or the end-of-stream message.
    Error { code: String, message: String },
    /// A keep-alive.
    Heartbeat,
    /// Titles, statuses, echoes, server-side tool rounds (`block.tool`): nothing to do.
    Ignored,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Raw {
    mask: String,
    chat: Option<RawChat>,
    message: Option<RawMessage>,
    block: Option<RawBlock>,
    done: Option<IgnoredAny>,
    heartbeat: Option<IgnoredAny>,
    error: Option<RawError>,
    exception: Option<RawException>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawChat {
    id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawMessage {
    id: String,
    role: String,
    refs: Option<RawRefs>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawRefs {
    search_chunks: Vec<RawChunk>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawChunk {
    base: RawBase,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawBase {
    title: String,
    url: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawBlock {
    text: Option<RawContent>,
    think: Option<RawContent>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawContent {
    content: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawError {
    code: String,
    message: String,
    details: Vec<RawDetail>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawDetail {
    debug: RawDebug,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawDebug {
    reason: String,
    localized_message: RawLocalized,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawLocalized {
    message: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawException {
    error: RawDebugLike,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawDebugLike {
    reason: String,
    localized_message: RawLocalized,
}

impl RawError {
    /// The most human message the error carries.
    fn into_event(self) -> ConnectEvent {
        let debug =
            self.details.into_iter().map(|d| d.debug).find(|d| !d.localized_message.message.is_empty());
        let message = match debug {
            Some(debug) if debug.reason.is_empty() => debug.localized_message.message,
            Some(debug) => format!("{} ({})", debug.localized_message.message, debug.reason),
            None if !self.message.is_empty() => self.message,
            None => format!("Kimi stopped with `{}`", self.code),
        };
        ConnectEvent::Error { code: self.code, message }
    }
}

/// Parses one data frame.
pub fn parse(payload: &[u8]) -> Result<ConnectEvent, serde_json::Error> {
    let raw: Raw = serde_json::from_slice(payload)?;
    if let Some(error) = raw.error {
        return Ok(error.into_event());
    }
    if let Some(exception) = raw.exception {
        let e = exception.error;
        let message = format!("{} ({})", e.localized_message.message, e.reason);
        return Ok(ConnectEvent::Error { code: "unavailable".into(), message });
    }
    if raw.done.is_some() {
        return Ok(ConnectEvent::Done);
    }
    if raw.heartbeat.is_some() {
        return Ok(ConnectEvent::Heartbeat);
    }
    if let Some(block) = raw.block {
        if let Some(text) = block.text.filter(|_| raw.mask.starts_with("block.text")) {
            return Ok(ConnectEvent::Text(text.content));
        }
        if let Some(think) = block.think.filter(|_| raw.mask.starts_with("block.think")) {
            return Ok(ConnectEvent::Thinking(think.content));
        }
        return Ok(ConnectEvent::Ignored);
    }
    if let Some(message) = raw.message {
        if let Some(refs) = message.refs.filter(|_| raw.mask.contains("refs.searchChunks")) {
            let sources = refs
                .search_chunks
                .into_iter()
                .filter(|c| !c.base.url.is_empty())
                .map(|c| (c.base.title, c.base.url))
                .collect();
            return Ok(ConnectEvent::Citations(sources));
        }
        if message.role == "assistant" && !message.id.is_empty() && raw.mask == "message" {
            return Ok(ConnectEvent::AssistantMessage { id: message.id });
        }
        return Ok(ConnectEvent::Ignored);
    }
    if let Some(chat) = raw.chat.filter(|c| !c.id.is_empty()) {
        return Ok(ConnectEvent::Chat { id: chat.id });
    }
    Ok(ConnectEvent::Ignored)
}

/// The error carried by an end-of-stream message, if any (`{}` is success).
pub fn end_stream_error(payload: &[u8]) -> Result<Option<ConnectEvent>, serde_json::Error> {
    let raw: Raw = serde_json::from_slice(payload)?;
    Ok(raw.error.map(RawError::into_event))
}

/// Removes Kimi's citation markers (`docs/kimi-protocol.md` §4.5) from answer text as it
/// streams, and nothing else. Text flows out at once; only a tail that may still be the start
/// of a marker is held, until it is decided. A marker is at most [`MAX_MARKER`] chars long, so
/// no more is ever held, and an opening that does not close in time is plain text after all.
#[derive(Debug, Default)]
pub struct CitationMarkers {
    /// The undecided start of a possible marker.
    held: String,
}

/// Opens the 2025 form and the 2026 header and quote.
const OPEN: char = '\u{E3A0}';
/// Delimits 2026 references, and opens the inline form on its own.
const TOOL: char = '\u{1F6E0}';
/// Kimi's markers are far shorter; the bound keeps a stray opening from holding the answer back.
const MAX_MARKER: usize = 1024;

/// The markers that start with [`OPEN`]: how each begins, and the characters that end it.
const OPEN_FORMS: [(&str, &[char]); 3] = [
    // 2025: U+E3A0 cite U+E3A3 web_search:1#2 U+E3A8
    ("\u{E3A0}cite\u{E3A3}", &['\u{E3A8}']),
    // 2026 quote: U+E3A0 cite 🛠 web_search:1#5:~:text=<quoted text> 🛠 (or U+E3A8)
    ("\u{E3A0}cite\u{1F6E0}", &['\u{1F6E0}', '\u{E3A8}']),
    // 2026 header: U+E3A0 article 🛠 web_search:1#5 🛠 web_search:1#0 🎨
    ("\u{E3A0}article\u{1F6E0}", &['\u{1F3A8}']),
];

/// What the text from an opening character on is.
enum Verdict {
    /// A marker this many bytes long.
    Marker(usize),
    /// Not a marker: the opening character is plain text.
    Text,
    /// May still become a marker: more text decides.
    Undecided,
}

impl CitationMarkers {
    /// The answer text of one piece; a tail that may start a marker waits for the next piece.
    pub fn strip(&mut self, text: String) -> String {
        if self.held.is_empty() && !text.contains(OPEN) && !text.contains(TOOL) {
            return text;
        }
        let input = std::mem::take(&mut self.held) + &text;
        self.scan(&input, false)
    }

    /// What is still held at the end of the stream: no marker can close any more.
    pub fn finish(&mut self) -> String {
        let held = std::mem::take(&mut self.held);
        self.scan(&held, true)
    }

    fn scan(&mut self, input: &str, at_end: bool) -> String {
        let mut out = String::with_capacity(input.len());
        let mut rest = input;
        while let Some(start) = rest.find([OPEN, TOOL]) {
            out.push_str(&rest[..start]);
            let candidate = &rest[start..];
            match verdict(candidate) {
                Verdict::Marker(len) => rest = &candidate[len..],
                Verdict::Undecided if !at_end => {
                    self.held = candidate.to_string();
                    return out;
                }
                Verdict::Text | Verdict::Undecided => {
                    let opening = candidate.chars().next().map_or(0, char::len_utf8);
                    out.push_str(&candidate[..opening]);
                    rest = &candidate[opening..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Decides the text at an opening character from its first [`MAX_MARKER`] chars.
fn verdict(candidate: &str) -> Verdict {
    let window = candidate.char_indices().nth(MAX_MARKER).map_or(candidate, |(end, _)| &candidate[..end]);
    let verdict = if window.starts_with(OPEN) { open_form(window) } else { inline_reference(window) };
    match verdict {
        Verdict::Undecided if window.len() < candidate.len() => Verdict::Text,
        verdict => verdict,
    }
}

/// A marker opened by [`OPEN`]: one of [`OPEN_FORMS`], up to its own closing character.
fn open_form(text: &str) -> Verdict {
    for (head, closers) in OPEN_FORMS {
        if let Some(body) = text.strip_prefix(head) {
            return match body.char_indices().find(|(_, c)| closers.contains(c)) {
                Some((end, closer)) => Verdict::Marker(head.len() + end + closer.len_utf8()),
                None => Verdict::Undecided,
            };
        }
    }
    if OPEN_FORMS.iter().any(|(head, _)| head.starts_with(text)) { Verdict::Undecided } else { Verdict::Text }
}

/// `🛠web_search:1#5🛠`: a lone 🛠, or 🛠 around anything but a reference, is text.
fn inline_reference(text: &str) -> Verdict {
    let body = &text[TOOL.len_utf8()..];
    match body.find(TOOL) {
        Some(end) if reference(&body[..end]) == Some(true) => Verdict::Marker(end + 2 * TOOL.len_utf8()),
        Some(_) => Verdict::Text,
        None if reference(body).is_some() => Verdict::Undecided,
        None => Verdict::Text,
    }
}

/// Whether `text` is a reference `name:digits#digits` (`Some(true)`), only the start of one
/// (`Some(false)`), or neither.
fn reference(text: &str) -> Option<bool> {
    let is_name = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let Some((name, rest)) = text.split_once(':') else { return is_name(text).then_some(false) };
    if name.is_empty() || !is_name(name) {
        return None;
    }
    let Some((call, result)) = rest.split_once('#') else { return is_digits(rest).then_some(false) };
    (!call.is_empty() && is_digits(call) && is_digits(result)).then_some(!result.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> ConnectEvent {
        parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn parses_the_captured_sequence() {
        let cases = [
            (
                r#"{"op":"set","eventOffset":1,"chat":{"id":"d2i70l0l3dcesrju6ur0","name":"未命名会话"}}"#,
                ConnectEvent::Chat { id: "d2i70l0l3dcesrju6ur0".into() },
            ),
            (r#"{"eventOffset":1,"heartbeat":{}}"#, ConnectEvent::Heartbeat),
            (
                r#"{"op":"set","mask":"message","message":{"id":"u1","role":"user","blocks":[{"text":{"content":"1+1="}}]}}"#,
                ConnectEvent::Ignored,
            ),
            (
                r#"{"op":"set","mask":"message","message":{"id":"a1","parentId":"u1","role":"assistant","status":"MESSAGE_STATUS_GENERATING"}}"#,
                ConnectEvent::AssistantMessage { id: "a1".into() },
            ),
            (r#"{"op":"set","mask":"chat.name","chat":{"name":"1+1="}}"#, ConnectEvent::Ignored),
            (
                r#"{"op":"set","mask":"block.text","block":{"id":"0","text":{}}}"#,
                ConnectEvent::Text(String::new()),
            ),
            (
                r#"{"op":"append","mask":"block.text.content","block":{"id":"0_0","text":{"content":" +"}}}"#,
                ConnectEvent::Text(" +".into()),
            ),
            (
                r#"{"op":"append","mask":"block.think.content","block":{"id":"1","think":{"content":"Alright"}}}"#,
                ConnectEvent::Thinking("Alright".into()),
            ),
            (
                r#"{"op":"set","mask":"message.status","message":{"id":"a1","status":"MESSAGE_STATUS_COMPLETED"}}"#,
                ConnectEvent::Ignored,
            ),
            (r#"{"eventOffset":13,"done":{}}"#, ConnectEvent::Done),
        ];
        for (json, expected) in cases {
            assert_eq!(event(json), expected, "{json}");
        }
    }

    #[test]
    fn search_refs_become_citations() {
        let json = r#"{"op":"append","mask":"message.refs.searchChunks","message":{"refs":{"searchChunks":[
            {"id":"1","base":{"title":"T","url":"https://u","siteName":"s"},"refIndex":"web_search:1#0"},
            {"id":"2","base":{"title":"no url"}}]}}}"#;
        assert_eq!(event(json), ConnectEvent::Citations(vec![("T".into(), "https://u".into())]));
    }

    #[test]
    fn errors_carry_the_most_human_message() {
        let json = r#"{"error":{"code":"resource_exhausted","details":[{"debug":{"reason":"REASON_SERVER_OVERLOADED_FOR_FREE_USER",
            "localizedMessage":{"locale":"en-US","message":"Too many people are chatting with Kimi right now."}}}]}}"#;
        let ConnectEvent::Error { code, message } = event(json) else { panic!() };
        assert_eq!(code, "resource_exhausted");
        assert!(message.starts_with("Too many people") && message.contains("OVERLOADED"));
        assert_eq!(
            end_stream_error(br#"{"error":{"code":"unauthenticated","message":"token expired"}}"#).unwrap(),
            Some(ConnectEvent::Error { code: "unauthenticated".into(), message: "token expired".into() })
        );
        assert_eq!(end_stream_error(b"{}").unwrap(), None);
        assert!(parse(b"{not json").is_err());
    }

    #[test]
    fn an_error_message_is_the_most_human_one_it_carries() {
        let error = |json: &str| match end_stream_error(json.as_bytes()).unwrap() {
            Some(ConnectEvent::Error { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        let localized = r#"{"error":{"code":"x","message":"raw","details":[{"debug":{"reason":"",
            "localizedMessage":{"message":"Slow down"}}}]}}"#;
        assert_eq!(error(localized), "Slow down", "no empty reason in brackets");
        assert_eq!(error(r#"{"error":{"code":"internal","message":""}}"#), "Kimi stopped with `internal`");
        assert_eq!(error(r#"{"error":{"code":"internal","message":"boom"}}"#), "boom");
    }

    #[test]
    fn several_text_blocks_each_carry_their_content() {
        let cases = [
            (
                r#"{"op":"set","mask":"block.text","block":{"id":"0","text":{"content":"Let me compute."}}}"#,
                "Let me compute.",
            ),
            (
                r#"{"op":"append","mask":"block.text.content","block":{"id":"0","text":{"content":" One moment."}}}"#,
                " One moment.",
            ),
            (
                r#"{"op":"set","mask":"block.text","block":{"id":"6","parentId":"0","text":{"content":"It is 391."}}}"#,
                "It is 391.",
            ),
            (
                r#"{"op":"append","mask":"block.text.content","block":{"id":"6","text":{"content":" Done."}}}"#,
                " Done.",
            ),
        ];
        for (json, text) in cases {
            assert_eq!(event(json), ConnectEvent::Text(text.into()), "{json}");
        }
    }

    #[test]
    fn server_side_tool_rounds_are_ignored() {
        let frames = [
            r#"{"op":"set","eventOffset":9,"block":{"id":"4","parentId":"0","tool":{"toolCallId":"ipython_0","name":"ipython","status":"STATUS_PENDING"}}}"#,
            r#"{"op":"append","mask":"block.tool.args","eventOffset":10,"block":{"id":"4","tool":{"args":"{\"code\": \"17"}}}"#,
            r#"{"op":"append","mask":"block.tool.args","eventOffset":11,"block":{"id":"4","tool":{"args":" * 23\"}"}}}"#,
            r#"{"op":"set","mask":"block.tool.args,block.tool.status,block.tool.toolCallId","eventOffset":12,
                "block":{"id":"4","tool":{"toolCallId":"ipython:1","args":"{\"code\": \"17 * 23\"}","status":"STATUS_RUNNING"}}}"#,
            r#"{"op":"set","mask":"block.tool.contents,block.tool.status","eventOffset":13,
                "block":{"id":"4","tool":{"contents":[{"text":"391"}],"status":"STATUS_DONE"}}}"#,
            r#"{"op":"set","mask":"block.tool.contents,block.tool.status","eventOffset":14,"block":{"id":"5","tool":{"contents":[
                {"searchResult":{"base":{"title":"T","url":"https://u"},"refIndex":"web_search:1#0"}}],"status":"STATUS_DONE","isError":false}}}"#,
            r#"{"op":"set","mask":"block.tool.contents,block.tool.status","eventOffset":15,
                "block":{"id":"7","tool":{"contents":[],"status":"STATUS_DONE","isError":true,"errorCode":"TIMEOUT"}}}"#,
        ];
        for json in frames {
            assert_eq!(event(json), ConnectEvent::Ignored, "{json}");
        }
    }

    /// Each input and the answer text it must give.
    const MARKED: &[(&str, &str)] = &[
        ("Sunny \u{E3A0}cite\u{E3A3}web_search:1#2\u{E3A8}today.", "Sunny today."),
        ("a\u{E3A0}cite\u{E3A3}web_search:1#2\u{E3A3}web_search:2#10\u{E3A8}b", "ab"),
        ("\u{E3A0}article🛠web_search:1#5🛠web_search:1#0🎨\n\nIn Paris today:", "\n\nIn Paris today:"),
        ("clouds \u{E3A0}cite🛠web_search:1#5:~:text=Showers, then sun 🎨 later🛠\n- wind", "clouds \n- wind"),
        ("24℃ \u{E3A0}cite🛠web_search:1#3:~:text=up to 24℃\u{E3A8} at noon", "24℃  at noon"),
        ("take an umbrella 🛠web_search:1#5🛠.", "take an umbrella ."),
        ("x🛠search_2:12#0🛠🛠web_search:1#1🛠y", "xy"),
        ("🛠🛠web_search:1#2🛠", "🛠"),
        ("a 🛠 b 🛠web_search:1#2🛠c", "a 🛠 b c"),
        (
            "\u{E3A0}article🛠web_search:1#1🛠web_search:1#0🎨Rain \u{E3A0}cite🛠web_search:1#1:~:text=rain🛠\
             later\u{E3A0}cite\u{E3A3}web_search:1#0\u{E3A8}, 🛠 wind 🛠web_search:1#0🛠.",
            "Rain later, 🛠 wind .",
        ),
    ];

    /// Text that only looks like a marker, unchanged.
    const PLAIN: &[&str] = &[
        "the 🛠 emoji",
        "🛠",
        "🛠 hammer 🛠",
        "🛠web_search:1#5 🛠",
        "🛠web_search:1#🛠",
        "🛠web_search:#5🛠",
        "🛠:1#5🛠",
        "🛠web search:1#5🛠",
        "🛠web_search:1#5:~:text=a🛠",
        "🛠web_search:1#5",
        "\u{E3A0}cita",
        "\u{E3A0}article.",
        "\u{E3A0}cite web_search:1#2\u{E3A8}",
        "\u{E3A0}",
        "🎨 and \u{E3A8} alone",
        "end \u{E3A0}article🛠web_search:1#5",
        "end \u{E3A0}cite🛠web_search:1#5:~:text=never closed",
    ];

    fn all_inputs() -> Vec<(String, String)> {
        let marked = MARKED.iter().map(|(input, output)| (input.to_string(), output.to_string()));
        marked.chain(PLAIN.iter().map(|text| (text.to_string(), text.to_string()))).collect()
    }

    /// The answer text for `input` cut into pieces at these byte offsets (char boundaries).
    fn stripped(input: &str, cuts: &[usize]) -> String {
        let mut markers = CitationMarkers::default();
        let mut out = String::new();
        let mut from = 0;
        for &cut in cuts.iter().chain([input.len()].iter()) {
            out += &markers.strip(input[from..cut].to_string());
            from = cut;
        }
        out + &markers.finish()
    }

    fn boundaries(input: &str) -> Vec<usize> {
        input.char_indices().map(|(i, _)| i).chain([input.len()]).collect()
    }

    #[test]
    fn every_form_is_removed_and_nothing_else() {
        for (input, output) in all_inputs() {
            assert_eq!(stripped(&input, &[]), output, "{input:?}");
        }
    }

    #[test]
    fn every_split_in_two_and_three_pieces_gives_the_same_text() {
        for (input, output) in all_inputs() {
            let points = boundaries(&input);
            for (n, &a) in points.iter().enumerate() {
                assert_eq!(stripped(&input, &[a]), output, "{input:?} cut at {a}");
                for &b in &points[n..] {
                    assert_eq!(stripped(&input, &[a, b]), output, "{input:?} cut at {a} and {b}");
                }
            }
        }
    }

    #[test]
    fn random_splits_give_the_same_text() {
        let inputs = all_inputs();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % bound as u64) as usize
        };
        for _ in 0..2000 {
            let (input, output) = &inputs[next(inputs.len())];
            let points = boundaries(input);
            let mut cuts: Vec<usize> = (0..next(8)).map(|_| points[next(points.len())]).collect();
            cuts.sort_unstable();
            assert_eq!(&stripped(input, &cuts), output, "{input:?} cut at {cuts:?}");
        }
    }

    #[test]
    fn text_flows_at_once_and_only_a_possible_marker_waits() {
        let mut markers = CitationMarkers::default();
        let piece = String::from("no marker here");
        let at = piece.as_ptr();
        let out = markers.strip(piece);
        assert_eq!(
            (out.as_str(), out.as_ptr()),
            ("no marker here", at),
            "the common case hands the piece on"
        );
        assert_eq!(markers.strip("Sun \u{E3A0}ci".into()), "Sun ");
        assert_eq!(markers.strip("te🛠web_search:1#0:~:text=sun".into()), "");
        assert_eq!(markers.strip("🛠 and 🛠".into()), " and ");
        assert_eq!(markers.strip("web_search:1#0🛠 wind 🛠".into()), " wind ");
        assert_eq!(markers.strip(" rain".into()), "🛠 rain");
        assert_eq!(markers.finish(), "");
    }

    #[test]
    fn an_unclosed_marker_is_text_after_a_bounded_wait() {
        for opening in
            ["\u{E3A0}cite🛠web_search:1#5:~:text=", "\u{E3A0}cite\u{E3A3}", "\u{E3A0}article🛠", "🛠web_"]
        {
            let input = format!("a {opening}{} b", "x".repeat(3 * MAX_MARKER));
            let mut markers = CitationMarkers::default();
            let mut out = String::new();
            for c in input.chars() {
                out += &markers.strip(c.to_string());
                assert!(
                    markers.held.chars().count() <= MAX_MARKER,
                    "{opening:?}: held {}",
                    markers.held.len()
                );
            }
            out += &markers.finish();
            assert_eq!(out, input);
            for cut in boundaries(&input).into_iter().step_by(97) {
                assert_eq!(stripped(&input, &[cut]), input, "{opening:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn a_marker_may_be_exactly_as_long_as_the_bound() {
        let marker = |len: usize| {
            let head = "\u{E3A0}cite🛠web_search:1#5:~:text=";
            format!("{head}{}🛠", "q".repeat(len - head.chars().count() - 1))
        };
        assert_eq!(marker(MAX_MARKER).chars().count(), MAX_MARKER);
        assert_eq!(stripped(&format!("a{}b", marker(MAX_MARKER)), &[]), "ab");
        let long = format!("a{}b", marker(MAX_MARKER + 1));
        assert_eq!(stripped(&long, &[]), long);
        assert_eq!(stripped(&long, &[5]), long);
    }
}
