//! Tool calling on a web chat that has none (`docs/tools.md`), as a layer on the neutral model:
//! [`prepare`] turns a request with tools into one a backend can send (the tools and the
//! grammar in the newest turn, earlier calls and results as text, an over-long history moved
//! into an attachment), and [`ToolCalls`] turns the calls the model writes back into
//! [`Event::ToolCall`]s as the answer streams. No dialect and no backend knows of it.

mod parse;
mod prompt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::chat::{self, Event, Finish, Flow, Message, Part, Role, Sink, Stop, ToolCall, ToolChoice};
use parse::Output;
pub use parse::ToolParser;
pub use prompt::DEFAULT_TEMPLATE;

/// How tools are offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The tool prompt (`prompt.txt`, or the operator's `--tool-prompt` file).
    pub template: String,
    /// A merged prompt longer than this (in characters) sends its history as a `.txt` file.
    pub max_inline_prompt: usize,
}

/// What the model is told about the history once it moved into a file.
const HISTORY_NOTE: &str = "The conversation so far, with its instructions, is in the attached file \
     conversation.txt: read it first, then answer the newest message below.";

/// The request as a backend can send it, and the parser of the answer when tools are on.
pub fn prepare(mut request: chat::Request, settings: &Settings) -> (chat::Request, Option<ToolParser>) {
    let active = !request.tools.is_empty() && request.tool_choice != ToolChoice::None;
    let mut messages = prompt::lower(std::mem::take(&mut request.messages));
    let block = active.then(|| {
        prompt::render(&settings.template, &request.tools, &request.tool_choice, request.parallel_tool_calls)
    });
    let size: usize =
        messages.iter().map(|m| m.joined_text().len()).sum::<usize>() + block.as_ref().map_or(0, String::len);
    if size > settings.max_inline_prompt && messages.len() > 1 {
        messages = history_as_file(messages);
    }
    if let Some(block) = block {
        newest_turn(&mut messages).parts.insert(0, Part::Text(block));
    }
    request.messages = messages;
    let parser =
        active.then(|| ToolParser::new(request.tools.iter().map(|t| (t.name.as_str(), schema_of(t)))));
    (request, parser)
}

/// The schema the parser reads a tool's parameters by; a freeform tool takes one raw `input`.
fn schema_of(tool: &chat::Tool) -> &Value {
    static FREEFORM: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    if tool.freeform {
        FREEFORM.get_or_init(|| json!({"type": "object", "properties": {"input": {"type": "string"}}}))
    } else {
        &tool.parameters
    }
}

/// The newest message, or a new user turn when the newest is the assistant's.
pub(in crate::chat) fn newest_turn(messages: &mut Vec<Message>) -> &mut Message {
    if messages.last().is_none_or(|m| m.role == Role::Assistant) {
        messages.push(Message { role: Role::User, parts: Vec::new() });
    }
    let last = messages.len() - 1;
    &mut messages[last]
}

/// Everything but the newest message as a text file attached to it, in the merged form the
/// model would otherwise read inline.
fn history_as_file(mut messages: Vec<Message>) -> Vec<Message> {
    let newest = messages.pop().unwrap_or(Message { role: Role::User, parts: Vec::new() });
    let mut history = String::new();
    for message in &messages {
        history.push_str(&format!("{}:{}\n", message.role.as_str(), message.joined_text()));
    }
    let url = format!("data:text/plain;name=conversation.txt;base64,{}", STANDARD.encode(history));
    let mut parts = vec![Part::Text(HISTORY_NOTE.into()), Part::File(url)];
    parts.extend(newest.parts);
    vec![Message { role: newest.role, parts }]
}

/// Turns the calls in the answer text into [`Event::ToolCall`]s. Text flows on at once (only
/// what may begin a call is held back); when the call block closes, the answer ends with
/// [`Finish::ToolCalls`] and the backend is told to stop reading (the model would otherwise go
/// on and invent the results), which [`ToolCalls::finished`] then tells from a real disconnect.
pub struct ToolCalls<S> {
    parser: Option<ToolParser>,
    inner: S,
    parallel: bool,
    calls: usize,
    finished: bool,
    out: Vec<Output>,
}

impl<S: Sink> ToolCalls<S> {
    pub fn new(parser: Option<ToolParser>, parallel: bool, inner: S) -> Self {
        ToolCalls { parser, inner, parallel, calls: 0, finished: false, out: Vec::new() }
    }

    /// The sink it passes events on to.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Passes on what the parser decided; a stop once the call block has closed.
    fn drain(&mut self) -> Flow {
        for output in std::mem::take(&mut self.out) {
            let flow = match output {
                Output::Text(text) => self.inner.send(Event::Text(text)),
                Output::Call(call) if self.parallel || self.calls == 0 => {
                    self.calls += 1;
                    let call = ToolCall { id: String::new(), name: call.name, arguments: call.arguments };
                    self.inner.send(Event::ToolCall(call))
                }
                Output::Call(_) => Flow::Go,
                Output::Done => return self.end(),
            };
            if flow != Flow::Go {
                return flow;
            }
        }
        Flow::Go
    }

    /// The call block closed: the answer is complete, and Kimi's reading stops (the model would
    /// go on and invent the results).
    fn end(&mut self) -> Flow {
        self.finished = true;
        let inner = &mut self.inner;
        inner
            .send(Event::Finish(Finish::ToolCalls))
            .then(|| inner.flush())
            .then(|| Flow::Stop(Stop::ToolCalls))
    }
}

impl<S: Sink> Sink for ToolCalls<S> {
    fn send(&mut self, event: Event) -> Flow {
        if self.finished {
            return Flow::Stop(Stop::ToolCalls);
        }
        let Some(parser) = self.parser.as_mut() else { return self.inner.send(event) };
        match event {
            Event::Text(text) => {
                parser.push(&text, &mut self.out);
                self.drain()
            }
            Event::Finish(reason) => {
                parser.finish(&mut self.out);
                let flow = self.drain();
                if flow != Flow::Go {
                    return flow;
                }
                let reason = if self.calls > 0 { Finish::ToolCalls } else { reason };
                self.inner.send(Event::Finish(reason))
            }
            other => self.inner.send(other),
        }
    }

    fn flush(&mut self) -> Flow {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Collect;
    use crate::chat::{Conversation, Mode, Tool};

    fn settings(max_inline_prompt: usize) -> Settings {
        Settings { template: DEFAULT_TEMPLATE.into(), max_inline_prompt }
    }

    fn request(choice: ToolChoice, messages: Vec<Message>) -> chat::Request {
        chat::Request {
            model: "kimi".into(),
            mode: Mode::default(),
            messages,
            conversation: Conversation::Ephemeral,
            stream: true,
            tools: vec![Tool {
                name: "get_weather".into(),
                description: "weather of a city".into(),
                parameters: json!({"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}),
                deferred: false,
                freeform: false,
            }],
            tool_choice: choice,
            parallel_tool_calls: true,
            output: chat::Output::Text,
        }
    }

    #[test]
    fn the_tool_block_goes_into_the_newest_turn() {
        let messages =
            vec![Message::text(Role::System, "be brief"), Message::text(Role::User, "weather in Paris?")];
        let (prepared, parser) = prepare(request(ToolChoice::Auto, messages), &settings(100_000));
        assert!(parser.is_some());
        let last = prepared.messages.last().unwrap().joined_text();
        assert!(last.contains("## get_weather") && last.ends_with("weather in Paris?"), "{last}");
        assert_eq!(prepared.messages[0].joined_text(), "be brief");
        let messages = vec![Message::text(Role::User, "hi")];
        let (prepared, parser) = prepare(request(ToolChoice::None, messages), &settings(100_000));
        assert!(parser.is_none() && prepared.messages[0].joined_text() == "hi", "tool_choice none: no tools");
    }

    #[test]
    fn a_long_history_moves_into_a_text_attachment() {
        let messages = vec![
            Message::text(Role::System, "x".repeat(500)),
            Message::text(Role::Assistant, "earlier answer"),
            Message::text(Role::User, "newest"),
        ];
        let (prepared, _) = prepare(request(ToolChoice::Auto, messages), &settings(200));
        assert_eq!(prepared.messages.len(), 1);
        let parts = &prepared.messages[0].parts;
        let Part::File(url) = &parts[2] else { panic!("{parts:?}") };
        let encoded = url.strip_prefix("data:text/plain;name=conversation.txt;base64,").unwrap();
        let history = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert!(history.starts_with("system:xxx") && history.contains("assistant:earlier answer\n"));
        let text = prepared.messages[0].joined_text();
        assert!(
            text.contains("## get_weather") && text.contains("conversation.txt") && text.ends_with("newest")
        );
    }

    #[test]
    fn calls_become_events_and_the_block_ends_the_answer() {
        let (prepared, parser) =
            prepare(request(ToolChoice::Auto, vec![Message::text(Role::User, "w")]), &settings(1000));
        let mut sink = ToolCalls::new(parser, prepared.parallel_tool_calls, Collect::default());
        assert_eq!(
            sink.send(Event::Text("Checking. <tool_calls>\n<invoke name=\"get_weather\">\n".into())),
            Flow::Go
        );
        let stopped = sink.send(Event::Text(
            "<parameter name=\"city\">Paris</parameter>\n<parameter name=\"days\">3</parameter>\n</invoke>\n</tool_calls>"
                .into(),
        ));
        assert_eq!(stopped, Flow::Stop(Stop::ToolCalls), "the backend stops reading, the answer complete");
        assert_eq!(sink.send(Event::Text("invented result".into())), Flow::Stop(Stop::ToolCalls));
        let events = sink.inner.0;
        assert_eq!(events[0], Event::Text("Checking. ".into()));
        let Event::ToolCall(call) = &events[1] else { panic!("{events:?}") };
        assert_eq!(
            (call.name.as_str(), Value::Object(call.arguments.clone())),
            ("get_weather", json!({"city": "Paris", "days": 3}))
        );
        assert_eq!(events[2], Event::Finish(Finish::ToolCalls));
    }

    #[test]
    fn without_tools_events_pass_unchanged() {
        let mut sink = ToolCalls::new(None, true, Collect::default());
        sink.send(Event::Text("<tool_calls>".into())).go().unwrap();
        sink.send(Event::Finish(Finish::Stop)).go().unwrap();
        assert_eq!(sink.inner.0, vec![Event::Text("<tool_calls>".into()), Event::Finish(Finish::Stop)]);
    }
}
