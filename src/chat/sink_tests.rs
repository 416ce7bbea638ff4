//! Sinks pass flushes on, citations are listed only when there were some, and errors and
//! prompt sizes say what they are (tests kept beside `chat.rs`'s own, in a file of their own).

use super::*;

/// Records events and counts flushes.
#[derive(Default)]
struct Recorder {
    events: Vec<Event>,
    flushes: usize,
}

impl Sink for Recorder {
    fn send(&mut self, event: Event) -> Flow {
        self.events.push(event);
        Flow::Go
    }

    fn flush(&mut self) -> Flow {
        self.flushes += 1;
        Flow::Go
    }
}

#[test]
fn flushes_reach_the_sink_underneath() {
    let mut recorder = Recorder::default();
    {
        let mut by_reference: &mut Recorder = &mut recorder;
        assert_eq!(Sink::flush(&mut by_reference), Flow::Go);
        let mut citations = CitationText::new(&mut recorder, true, false);
        assert_eq!(citations.flush(), Flow::Go);
    }
    assert_eq!(recorder.flushes, 2);
}

#[test]
fn an_answer_without_citations_gets_no_citation_list() {
    let mut recorder = Recorder::default();
    let mut citations = CitationText::new(&mut recorder, false, false);
    assert_eq!(citations.send(Event::Text("plain".into())), Flow::Go);
    assert_eq!(citations.send(Event::Finish(Finish::Stop)), Flow::Go);
    assert_eq!(recorder.events, [Event::Text("plain".into()), Event::Finish(Finish::Stop)]);
}

#[test]
fn errors_display_their_kind_and_message() {
    let error = Error::new(ErrorKind::RequestTimeout, "too slow");
    assert_eq!(error.to_string(), "RequestTimeout: too slow");
    assert_eq!(error.kind.status(), 408);
}

#[test]
fn a_prompt_is_as_many_tokens_as_its_text() {
    let request = |text: &str| Request {
        model: "kimi".into(),
        mode: Mode::default(),
        messages: vec![Message::text(Role::User, text)],
        conversation: Conversation::Ephemeral,
        stream: false,
        tools: Vec::new(),
        tool_choice: ToolChoice::Auto,
        parallel_tool_calls: true,
        output: crate::chat::Output::Text,
        tool_prompt: None,
    };
    assert_eq!(request(&"abcd".repeat(25)).estimated_prompt_tokens(), 25);
    assert_eq!(request("").estimated_prompt_tokens(), 1, "never zero");
}
