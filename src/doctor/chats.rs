//! The doctor's chat steps: one chat each on the account, with a sink that keeps what the answer
//! held (text pieces, reasoning, citations), judged by what the step asked for.

use std::time::{Duration, Instant};

use super::report::Verdict;
use super::steps::Context;
use crate::chat::{self, Conversation, Event, Flow, Message, Mode, Output, Role, Sink, ToolChoice};
use crate::kimi::{self, Credential};

/// What a chat step asks and what its answer must hold.
pub struct Ask {
    model: &'static str,
    stream: bool,
    prompt: &'static str,
    want: Want,
}

/// What an answer must hold beyond text.
#[derive(Clone, Copy, PartialEq)]
enum Want {
    Text,
    Pieces,
    Citations,
    Thinking,
    /// A model free accounts are refused: the refusal is a note, not a failure.
    PaidModel,
}

const SHORT: &str = "Reply with the single word OK.";

impl Ask {
    pub const CHAT: Ask = Ask { model: "kimi", stream: false, prompt: SHORT, want: Want::Text };
    pub const STREAM: Ask = Ask { model: "kimi", stream: true, prompt: SHORT, want: Want::Pieces };
    pub const SEARCH: Ask = Ask {
        model: "kimi-search",
        stream: true,
        prompt: "Search the web: what is the latest stable version of the Rust language? Answer briefly.",
        want: Want::Citations,
    };
    pub const THINKING: Ask = Ask {
        model: "kimi-thinking",
        stream: true,
        prompt: "Think step by step: what is 17 * 23? Give only the number at the end.",
        want: Want::Thinking,
    };
    pub const K3: Ask = Ask { model: "kimi-k3", stream: true, prompt: SHORT, want: Want::PaidModel };
}

/// One chat on the account, judged.
pub fn run(context: &mut Context<'_>, ask: &Ask) -> Verdict {
    let request = chat::Request {
        model: ask.model.into(),
        mode: Mode::from_model_name(ask.model),
        messages: vec![Message::text(Role::User, ask.prompt)],
        conversation: Conversation::Ephemeral,
        stream: ask.stream,
        tools: Vec::new(),
        tool_choice: ToolChoice::Auto,
        parallel_tool_calls: true,
        output: Output::Text,
        tool_prompt: None,
    };
    let mut seen = Seen { started: Some(Instant::now()), ..Seen::default() };
    match context.kimi.chat(Credential::Tokens(context.token), &request, &mut seen) {
        (_, Err(kimi::Error::PlanRequired(_))) if ask.want == Want::PaidModel => {
            Verdict::note("needs a paid plan: Kimi refuses K3 to free accounts (`kimi` works)")
        }
        (_, Err(error)) => Verdict::fail(error.to_string()),
        _ => judge(ask.want, &seen),
    }
}

/// What a step's answer held.
#[derive(Default)]
struct Seen {
    text: String,
    pieces: usize,
    thinking: usize,
    citations: usize,
    first_text: Option<Duration>,
    started: Option<Instant>,
}

impl Sink for Seen {
    fn send(&mut self, event: Event) -> Flow {
        match event {
            Event::Text(text) => {
                self.pieces += 1;
                self.text.push_str(&text);
                self.first_text = self.first_text.or_else(|| self.started.map(|s| s.elapsed()));
            }
            Event::Thinking(text) => self.thinking += text.len(),
            Event::Citation { .. } => self.citations += 1,
            _ => {}
        }
        Flow::Go
    }
}

fn judge(want: Want, seen: &Seen) -> Verdict {
    let first = seen.first_text.map_or(0, |d| d.as_millis());
    match want {
        _ if seen.text.trim().is_empty() => Verdict::fail("Kimi's answer was empty"),
        Want::Citations if seen.citations == 0 => Verdict::fail("answered, but without citations"),
        Want::Citations => Verdict::pass(format!("{} citations", seen.citations)),
        Want::Thinking if seen.thinking == 0 => Verdict::fail("answered, but no reasoning came"),
        Want::Thinking => Verdict::pass(format!("{} bytes of reasoning, then the answer", seen.thinking)),
        Want::Pieces => Verdict::pass(format!("{} pieces, the first after {first} ms", seen.pieces)),
        Want::Text | Want::PaidModel => {
            Verdict::pass(format!("answered {} characters", seen.text.chars().count()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_judged_by_what_its_step_asked_for() {
        let mut seen = Seen { text: "OK".into(), pieces: 2, ..Seen::default() };
        assert_eq!(judge(Want::Text, &seen), Verdict::pass("answered 2 characters"));
        assert_eq!(judge(Want::Citations, &seen), Verdict::fail("answered, but without citations"));
        assert_eq!(judge(Want::Thinking, &seen), Verdict::fail("answered, but no reasoning came"));
        seen.citations = 2;
        seen.thinking = 40;
        assert_eq!(judge(Want::Citations, &seen), Verdict::pass("2 citations"));
        assert_eq!(judge(Want::Thinking, &seen), Verdict::pass("40 bytes of reasoning, then the answer"));
        seen.text = " ".into();
        assert_eq!(judge(Want::Citations, &seen), Verdict::fail("Kimi's answer was empty"));
    }
}
