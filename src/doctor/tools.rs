//! The doctor's `tools` step (`docs/tools.md` §5): in each mode the account's API offers, one
//! harmless declared function is asked for (`get_time` with a fixed argument), and the line says
//! whether a well-formed call came back, in which form and how fast. The mode that worked first
//! (native before prompt) is recommended and kept for `--tool-mode auto`.

use std::time::Instant;

use serde_json::json;

use super::report::Verdict;
use crate::chat::tools::{self, ToolReport};
use crate::chat::{self, Answer, Conversation, Layers, Message, Mode, Role, Tool, ToolChoice, ToolOffer};
use crate::kimi::{Credential, Kimi};

/// The words the probe's prompt holds (the test mock answers them with the call).
const PROBE: &str = "This is the kimi-free-api tool probe: call the get_time function with the timezone \
     UTC, and write nothing else.";

/// What one mode gave.
enum Tried {
    /// A well-formed call, in this form, after this many milliseconds.
    Called(&'static str, u128),
    /// An answer without the call (its start, for the report).
    NoCall(String),
    Failed(String),
}

/// Asks for the call in each mode and recommends one.
pub fn probe(kimi: &Kimi, token: &str, settings: &tools::Settings) -> Verdict {
    let connect = kimi.catalogue(Credential::Tokens(token)).is_some();
    let offers: &[ToolOffer] =
        if connect { &[ToolOffer::Native, ToolOffer::Prompt] } else { &[ToolOffer::Prompt] };
    let tried: Vec<(ToolOffer, Tried)> =
        offers.iter().map(|&o| (o, try_offer(kimi, token, settings, o))).collect();
    let parts: Vec<String> =
        tried.iter().map(|(offer, t)| format!("{}: {}", offer.name(), describe(t))).collect();
    let Some((works, _)) = tried.iter().find(|(_, t)| matches!(t, Tried::Called(..))) else {
        return Verdict::fail(format!(
            "{}; no mode gave the call: tune the templates (docs/tools.md §6)",
            parts.join("; ")
        ));
    };
    if !connect {
        return Verdict::pass(format!("{}; the legacy API takes tools in the prompt only", parts.join("; ")));
    }
    let why = format!("the doctor's probe: {}", parts.join("; "));
    kimi.learn_tool_mode(token, *works, why);
    Verdict::pass(format!("{}; auto uses {}", parts.join("; "), works.name()))
}

fn describe(tried: &Tried) -> String {
    match tried {
        Tried::Called(form, ms) => format!("call in {form} form ({ms} ms)"),
        Tried::NoCall(text) => format!("no call, answered {text:?}"),
        Tried::Failed(error) => format!("failed ({error})"),
    }
}

fn try_offer(kimi: &Kimi, token: &str, settings: &tools::Settings, offer: ToolOffer) -> Tried {
    let (mut request, layers) = Layers::prepare(request(), settings);
    if let Some(prompt) = request.tool_prompt.as_mut() {
        prompt.only = Some(offer);
    }
    let started = Instant::now();
    let mut answer = Answer::default();
    let mut sink = layers.over(&mut answer, false);
    let (_, result) = kimi.chat(Credential::Tokens(token), &request, &mut sink);
    let report: ToolReport = sink.report();
    if let Err(error) = result {
        return Tried::Failed(error.to_string());
    }
    let good = answer.calls.iter().any(|call| {
        call.name == "get_time"
            && call
                .arguments
                .get("timezone")
                .and_then(|v| v.as_str())
                .is_some_and(|z| z.eq_ignore_ascii_case("utc"))
    });
    match report.forms.first() {
        Some(form) if good => Tried::Called(form, started.elapsed().as_millis()),
        _ => Tried::NoCall(answer.text.chars().take(60).collect()),
    }
}

fn request() -> chat::Request {
    chat::Request {
        model: "kimi".into(),
        mode: Mode::default(),
        messages: vec![Message::text(Role::User, PROBE)],
        conversation: Conversation::Ephemeral,
        stream: false,
        tools: vec![Tool {
            name: "get_time".into(),
            description: "The current time in a timezone.".into(),
            parameters: json!({"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}),
            deferred: false,
            freeform: false,
        }],
        tool_choice: ToolChoice::Auto,
        parallel_tool_calls: false,
        output: chat::Output::Text,
        tool_prompt: None,
    }
}
