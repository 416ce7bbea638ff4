//! Tool calling on a web chat that takes no tool schemas (`docs/tools.md`), as a layer on the
//! neutral model: [`prepare`] turns a request with tools into one a backend can send (earlier
//! calls and results as text, an over-long history moved into an attachment, and the tool
//! section for either place the backend may put it, [`ToolPrompt`]), and [`ToolCalls`] turns the
//! calls the model writes back into [`Event::ToolCall`]s as the answer streams, asking once
//! more when a required call did not come. No dialect knows of it; a backend only places the
//! tool section ([`in_turn`]) and asks again when told ([`corrective`]).

mod parse;
mod prompt;

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::chat::{
    self, Event, Finish, Flow, Message, Part, Role, Sink, Stop, ToolCall, ToolChoice, ToolOffer, ToolPrompt,
};
use parse::Output;
pub use parse::ToolParser;
pub use prompt::{DEFAULT_TEMPLATE, NATIVE_TEMPLATE};

/// How tools are offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The tool section for the newest user turn (`prompt.txt`, or the operator's
    /// `--tool-prompt` file).
    pub template: String,
    /// The tool section for Kimi's system prompt field (`native.txt`, or the operator's
    /// `--native-tool-prompt` file).
    pub native_template: String,
    /// A merged prompt longer than this (in characters) sends its history as a `.txt` file.
    pub max_inline_prompt: usize,
}

/// What the model is told about the history once it moved into a file.
const HISTORY_NOTE: &str = "The conversation so far, with its instructions, is in the attached file \
     conversation.txt: read it first, then answer the newest message below.";

/// The request as a backend can send it, and the parser of the answer when tools are on.
pub fn prepare(mut request: chat::Request, settings: &Settings) -> (chat::Request, Option<ToolParser>) {
    let active = !request.tools.is_empty() && request.tool_choice != ToolChoice::None;
    let in_chat = request.tool_prompt.as_ref().is_some_and(|p| p.in_chat);
    let mut messages = prompt::lower(std::mem::take(&mut request.messages));
    let section = |template: &str| {
        prompt::render(template, &request.tools, &request.tool_choice, request.parallel_tool_calls)
    };
    let tool_prompt = active.then(|| ToolPrompt {
        turn: section(&settings.template),
        system: section(&settings.native_template),
        only: None,
        in_chat,
    });
    // A section the chat already holds is not sent again, so it does not count.
    let section_size = tool_prompt.as_ref().filter(|p| !p.in_chat).map_or(0, |p| p.turn.len());
    let size: usize = messages.iter().map(|m| m.joined_text().len()).sum::<usize>() + section_size;
    if size > settings.max_inline_prompt && messages.len() > 1 {
        messages = history_as_file(messages);
    }
    request.messages = messages;
    request.tool_prompt = tool_prompt;
    let parser =
        active.then(|| ToolParser::new(request.tools.iter().map(|t| (t.name.as_str(), schema_of(t)))));
    (request, parser)
}

/// The request with its tool section at the head of the newest user turn: how a backend offers
/// tools when it does not declare them to Kimi ([`ToolOffer::Prompt`]).
pub fn in_turn(request: &chat::Request) -> Cow<'_, chat::Request> {
    let Some(tool_prompt) = request.tool_prompt.as_ref().filter(|p| !p.in_chat) else {
        return Cow::Borrowed(request);
    };
    let mut placed = request.clone();
    placed.tool_prompt = None;
    newest_turn(&mut placed.messages).parts.insert(0, Part::Text(tool_prompt.turn.clone()));
    Cow::Owned(placed)
}

/// The follow-up a backend sends in the same chat when a required call did not come
/// ([`Stop::CallMissing`]); `None` when the request requires no call.
pub fn corrective(request: &chat::Request) -> Option<String> {
    let names = match &request.tool_choice {
        ToolChoice::Required => request.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "),
        ToolChoice::Named(name) => name.clone(),
        ToolChoice::Auto | ToolChoice::None => return None,
    };
    Some(format!(
        "Your answer called no function, but this step needs a call. Call one of: {names}. Write only \
         the call block, in the form given earlier."
    ))
}

/// Whether the request's answer must hold a call.
pub fn requires_call(request: &chat::Request) -> bool {
    !request.tools.is_empty() && matches!(request.tool_choice, ToolChoice::Required | ToolChoice::Named(_))
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
/// on and invent the results). An answer that must call a tool and called none is not finished:
/// the backend is told to ask once more ([`Stop::CallMissing`]), and the next answer is taken
/// as it comes.
pub struct ToolCalls<S> {
    parser: Option<ToolParser>,
    inner: S,
    parallel: bool,
    calls: usize,
    finished: bool,
    out: Vec<Output>,
    report: ToolReport,
}

/// What became of one request's tools (for `/metrics`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolReport {
    /// How the backend offered them; `None` when the request had none.
    pub offer: Option<ToolOffer>,
    /// The form of each call passed on.
    pub forms: Vec<&'static str>,
    /// Whether a call was required.
    pub required: bool,
    /// Whether the backend was asked to ask again (a required call did not come).
    pub followed_up: bool,
    /// Whether the answer ended without the required call, even after asking again.
    pub missing: bool,
}

impl<S: Sink> ToolCalls<S> {
    pub fn new(parser: Option<ToolParser>, parallel: bool, required: bool, inner: S) -> Self {
        let report = ToolReport { required: required && parser.is_some(), ..ToolReport::default() };
        ToolCalls { parser, inner, parallel, calls: 0, finished: false, out: Vec::new(), report }
    }

    /// The sink it passes events on to.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// What became of the request's tools so far.
    pub fn report(&self) -> ToolReport {
        let forms = self.parser.as_ref().map_or(&[][..], ToolParser::forms);
        ToolReport { forms: forms.iter().take(self.calls).copied().collect(), ..self.report.clone() }
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

    /// The answer ends with calls: it is complete, and Kimi's reading stops (the model would
    /// go on and invent the results).
    fn end(&mut self) -> Flow {
        self.finished = true;
        let inner = &mut self.inner;
        inner
            .send(Event::Finish(Finish::ToolCalls))
            .then(|| inner.flush())
            .then(|| Flow::Stop(Stop::ToolCalls))
    }

    /// Kimi's answer came to its end: what is held is decided, and the answer finishes — with
    /// its calls, or, when a required call did not come, once the backend asked again.
    fn finish(&mut self, reason: Finish) -> Flow {
        if let Some(parser) = self.parser.as_mut() {
            parser.finish(&mut self.out);
        }
        let flow = self.drain();
        if flow != Flow::Go || self.finished {
            return flow;
        }
        if self.calls > 0 {
            return self.end();
        }
        if self.report.required && !self.report.followed_up {
            self.report.followed_up = true;
            return self.inner.flush().then(|| Flow::Stop(Stop::CallMissing));
        }
        self.report.missing = self.report.required;
        self.inner.send(Event::Finish(reason))
    }
}

impl<S: Sink> Sink for ToolCalls<S> {
    fn send(&mut self, event: Event) -> Flow {
        if self.finished {
            return Flow::Stop(Stop::ToolCalls);
        }
        match event {
            Event::ToolsOffered(offer) => {
                self.report.offer = self.parser.as_ref().map(|_| offer);
                Flow::Go
            }
            Event::Text(text) if self.parser.is_some() => {
                if let Some(parser) = self.parser.as_mut() {
                    parser.push(&text, &mut self.out);
                }
                self.drain()
            }
            Event::Finish(reason) if self.parser.is_some() => self.finish(reason),
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
        Settings {
            template: DEFAULT_TEMPLATE.into(),
            native_template: NATIVE_TEMPLATE.into(),
            max_inline_prompt,
        }
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
            tool_prompt: None,
        }
    }

    #[test]
    fn the_tool_block_goes_into_the_newest_turn() {
        let messages =
            vec![Message::text(Role::System, "be brief"), Message::text(Role::User, "weather in Paris?")];
        let (prepared, parser) = prepare(request(ToolChoice::Auto, messages), &settings(100_000));
        assert!(parser.is_some());
        assert!(prepared.messages.last().unwrap().joined_text() == "weather in Paris?", "not placed yet");
        let system = &prepared.tool_prompt.as_ref().unwrap().system;
        assert!(system.starts_with("# Tools") && system.contains("## get_weather"), "{system}");
        let prepared = in_turn(&prepared);
        assert_eq!(prepared.tool_prompt, None);
        let last = prepared.messages.last().unwrap().joined_text();
        assert!(last.contains("## get_weather") && last.ends_with("weather in Paris?"), "{last}");
        assert_eq!(prepared.messages[0].joined_text(), "be brief");
        let messages = vec![Message::text(Role::User, "hi")];
        let (prepared, parser) = prepare(request(ToolChoice::None, messages), &settings(100_000));
        assert!(parser.is_none() && prepared.tool_prompt.is_none(), "tool_choice none: no tools");
        assert_eq!(in_turn(&prepared).messages[0].joined_text(), "hi");
    }

    #[test]
    fn a_long_history_moves_into_a_text_attachment() {
        let messages = vec![
            Message::text(Role::System, "x".repeat(500)),
            Message::text(Role::Assistant, "earlier answer"),
            Message::text(Role::User, "newest"),
        ];
        let (prepared, _) = prepare(request(ToolChoice::Auto, messages), &settings(200));
        let prepared = in_turn(&prepared);
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
        let mut sink = ToolCalls::new(parser, prepared.parallel_tool_calls, false, Collect::default());
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
        let mut sink = ToolCalls::new(None, true, false, Collect::default());
        sink.send(Event::Text("<tool_calls>".into())).go().unwrap();
        sink.send(Event::Finish(Finish::Stop)).go().unwrap();
        assert_eq!(sink.inner.0, vec![Event::Text("<tool_calls>".into()), Event::Finish(Finish::Stop)]);
    }

    #[test]
    fn a_required_call_that_does_not_come_asks_once_more_then_takes_the_answer() {
        let (prepared, parser) =
            prepare(request(ToolChoice::Required, vec![Message::text(Role::User, "w")]), &settings(1000));
        assert!(requires_call(&prepared));
        let asked = corrective(&prepared).unwrap();
        assert!(asked.contains("Call one of: get_weather"), "{asked}");
        let mut sink = ToolCalls::new(parser, true, true, Collect::default());
        sink.send(Event::ToolsOffered(ToolOffer::Native)).go().unwrap();
        sink.send(Event::Text("I think it is sunny.".into())).go().unwrap();
        assert_eq!(sink.send(Event::Finish(Finish::Stop)), Flow::Stop(Stop::CallMissing));
        assert!(!sink.inner.0.iter().any(|e| matches!(e, Event::Finish(_))), "not finished yet");
        sink.send(Event::Text(" Still sunny.".into())).go().unwrap();
        assert_eq!(sink.send(Event::Finish(Finish::Stop)), Flow::Go, "asked once, then the answer as it is");
        assert_eq!(sink.inner.0.last(), Some(&Event::Finish(Finish::Stop)));
        let report = sink.report();
        assert!(report.followed_up && report.missing && report.forms.is_empty());
        assert_eq!(report.offer, Some(ToolOffer::Native));
        assert!(!sink.inner.0.iter().any(|e| matches!(e, Event::ToolsOffered(_))), "the layer keeps it");
    }

    #[test]
    fn a_call_after_asking_again_is_a_call_and_its_form_is_reported() {
        let (_, parser) = prepare(
            request(ToolChoice::Named("get_weather".into()), vec![Message::text(Role::User, "w")]),
            &settings(1000),
        );
        let mut sink = ToolCalls::new(parser, true, true, Collect::default());
        sink.send(Event::Text("No call.".into())).go().unwrap();
        assert_eq!(sink.send(Event::Finish(Finish::Stop)), Flow::Stop(Stop::CallMissing));
        let call = "<function_calls><invoke name=\"get_weather\"><parameter name=\"city\">A &amp; B</parameter></invoke></function_calls>";
        assert_eq!(sink.send(Event::Text(call.into())), Flow::Stop(Stop::ToolCalls));
        let report = sink.report();
        assert_eq!(report.forms, vec!["function_calls"]);
        assert!(report.followed_up && !report.missing);
        let Some(Event::ToolCall(made)) = sink.inner.0.iter().find(|e| matches!(e, Event::ToolCall(_)))
        else {
            panic!("{:?}", sink.inner.0)
        };
        assert_eq!(made.arguments["city"], "A & B");
    }

    #[test]
    fn calls_read_at_the_end_of_the_answer_stop_it_as_tool_calls() {
        let (_, parser) =
            prepare(request(ToolChoice::Auto, vec![Message::text(Role::User, "w")]), &settings(1000));
        let mut sink = ToolCalls::new(parser, true, false, Collect::default());
        let bare = "<invoke name=\"get_weather\">\n<parameter name=\"city\">Oslo</parameter>\n</invoke>";
        sink.send(Event::Text(bare.into())).go().unwrap();
        assert_eq!(sink.send(Event::Finish(Finish::Stop)), Flow::Stop(Stop::ToolCalls));
        assert_eq!(sink.inner.0.last(), Some(&Event::Finish(Finish::ToolCalls)));
        assert_eq!(sink.report().forms, vec!["invoke"]);
        assert_eq!(corrective(&request(ToolChoice::Auto, Vec::new())), None, "nothing to ask for");
    }
}
