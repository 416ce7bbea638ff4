//! A whole answer, collected from the events for a non-streaming response.

use super::{Event, Finish, Flow, Sink, ToolCall};

/// A whole answer, collected for a non-streaming response (the same for every dialect).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub conversation_id: Option<String>,
    pub text: String,
    pub thinking: String,
    /// Tool calls, in the order the model made them.
    pub calls: Vec<ToolCall>,
    pub finish: Finish,
    /// Set when JSON was asked for and the answer (after one corrective follow-up) is not it:
    /// why, in a sentence, for the dialect's marker. The text is then the model's, as it is.
    pub invalid_output: Option<String>,
}

impl Default for Answer {
    fn default() -> Self {
        Answer {
            conversation_id: None,
            text: String::new(),
            thinking: String::new(),
            calls: Vec::new(),
            finish: Finish::Stop,
            invalid_output: None,
        }
    }
}

impl Sink for Answer {
    fn send(&mut self, event: Event) -> Flow {
        match event {
            Event::ConversationId(id) => self.conversation_id = Some(id),
            Event::Text(text) => self.text.push_str(&text),
            Event::Thinking(text) => self.thinking.push_str(&text),
            Event::Finish(finish) => self.finish = finish,
            Event::ToolCall(call) => self.calls.push(call),
            // Citations reach here as text (see `chat::CitationText`).
            Event::Citation { .. } | Event::Heartbeat | Event::ToolsOffered(_) => {}
        }
        Flow::Go
    }
}
