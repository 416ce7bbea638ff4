//! The neutral chat model: the only meeting point of the client dialects and the Kimi backends.
//!
//! A dialect turns its JSON into a [`Request`] and renders [`Event`]s back into its own wire
//! format; a backend turns a [`Request`] into [`Event`]s pushed to a [`Sink`] as soon as each is
//! decoded. Neither side knows the other's types.

mod answer;
mod citations;
mod layers;
pub mod output;
mod sink;
pub mod tools;

use std::fmt;

use serde_json::{Map, Value};

pub use answer::Answer;
pub use citations::CitationText;
pub use layers::{Layers, Stack};
pub use output::Output;
#[cfg(test)]
pub(crate) use sink::Collect;
pub use sink::{Ended, Flow, Sink, Stop};

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    /// The result of a tool call, fed back by the client.
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// An image by URL (`http(s)://` or a `data:` URL).
    Image(String),
    /// A document by URL (`http(s)://` or a `data:` URL).
    File(String),
    /// A tool call the assistant made earlier (sent back by the client in the history).
    ToolCall(ToolCall),
    /// What the client's tool answered to a call.
    ToolResult(ToolResult),
}

impl Part {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Part::Text(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_call(&self) -> Option<&ToolCall> {
        match self {
            Part::ToolCall(call) => Some(call),
            _ => None,
        }
    }
}

/// A function the client's program runs when the model asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: String,
    /// The JSON Schema of its arguments (an object schema), as the client sent it.
    pub parameters: Value,
    /// Claude Code's tool search: listed by name only until a `tool_reference` loads it.
    pub deferred: bool,
    /// A freeform tool whose single input is raw text (Codex's `custom` tools).
    pub freeform: bool,
}

/// A call of a tool: by the model in an answer, or echoed back by the client in the history.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The dialect's id (`call_…`, `toolu_…`); empty when the client sent none.
    pub id: String,
    pub name: String,
    pub arguments: Map<String, Value>,
}

/// A tool's answer, fed back by the client.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    /// The id of the call it answers (may be empty), and the tool's name when known.
    pub call_id: String,
    pub name: String,
    pub content: String,
    pub is_error: bool,
}

/// Which tools the model may or must call (`tool_choice`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// No tool: none are shown to the model.
    None,
    /// Some tool must be called.
    Required,
    /// This tool must be called.
    Named(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

impl Message {
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message { role, parts: vec![Part::Text(text.into())] }
    }

    /// The text parts, one per line.
    pub fn joined_text(&self) -> String {
        text_of(&self.parts)
    }

    pub fn has_attachments(&self) -> bool {
        self.parts.iter().any(|part| matches!(part, Part::Image(_) | Part::File(_)))
    }
}

/// The text parts among `parts`, one per line.
pub fn text_of(parts: &[Part]) -> String {
    let texts: Vec<&str> = parts.iter().filter_map(Part::as_text).collect();
    texts.join("\n")
}

/// What the model name (and a few request fields) ask of Kimi.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mode {
    pub search: bool,
    /// "Explore" deep research.
    pub research: bool,
    pub thinking: bool,
    pub math: bool,
    /// Hide search citations from the answer.
    pub silent: bool,
    /// A Kimi+ agent id (20 characters, from the agent's URL).
    pub agent: Option<String>,
    /// The model's top reasoning effort (`-max`, or the dialect's top effort value).
    pub max_effort: bool,
}

impl Mode {
    /// Reads the flags from a model name, as the original project's users write them:
    /// substrings combine (`kimi-search-silent`), and a bare 20-character `[0-9a-z]` name is a
    /// Kimi+ agent id and nothing else (so an agent id that happens to contain `k1` stays an
    /// agent, unlike in the original).
    pub fn from_model_name(model: &str) -> Mode {
        let name = model.trim().to_ascii_lowercase();
        if is_agent_id(&name) {
            return Mode { agent: Some(name), ..Mode::default() };
        }
        let research = name.contains("research");
        Mode {
            search: name.contains("search"),
            research,
            thinking: name.contains("k1") || name.contains("think") || name.contains("reason"),
            math: name.contains("math"),
            silent: name.contains("silent"),
            agent: None,
            max_effort: name.split(['-', '_']).any(|word| word == "max"),
        }
    }
}

/// `^[0-9a-z]{20}$`: the shape of Kimi+ agent ids and legacy chat ids.
pub fn is_agent_id(name: &str) -> bool {
    name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// The model names listed by `/v1/models`, with what each asks for. On the Connect API the
/// account's model catalogue decides which model a name runs on (the listing says so when the
/// caller's account is known); legacy tokens get the default assistant or the K1 agent. Any
/// other name works too: flags are read from its words, and unknown names get the default.
pub const MODELS: &[(&str, &str)] = &[
    ("kimi", "the account's default model (Instant, K2.6, on every account today)"),
    ("kimi-latest", "the account's default model"),
    ("kimi-thinking", "the default model with thinking; reasoning streamed as reasoning_content"),
    ("kimi-search", "the default model with web search, with citations"),
    ("kimi-search-silent", "web search, citations hidden"),
    ("kimi-silent", "citations hidden"),
    ("kimi-k2", "Instant (K2.6)"),
    ("kimi-k2-thinking", "Instant (K2.6) with thinking"),
    ("kimi-k3", "K3, Kimi's agent model (paid plans; free accounts are refused)"),
    ("kimi-k3-thinking", "K3 with high reasoning effort"),
    ("kimi-k3-max", "K3 with its top reasoning effort (costs more credits)"),
    ("kimi-k2.8", "K2.8 (preview), an agent model (paid plans)"),
    ("kimi-k3-swarm", "K3 Swarm, several agents at once (paid plans)"),
    ("kimi-research", "deep research: an agent run with web search, minutes long (legacy API: explore mode)"),
    ("kimi-k1", "thinking (legacy API: the K1 agent); reasoning as reasoning_content"),
    ("kimi-math", "math mode on the legacy API"),
];

/// [`MODELS`] as owned pairs: what `/v1/models` lists when no account's catalogue is known.
pub fn listed_models() -> Vec<(String, String)> {
    MODELS.iter().map(|(name, description)| (name.to_string(), description.to_string())).collect()
}

/// What a listed model name does; empty for a name that is not listed (it still works).
pub fn model_description<'l>(list: &'l [(String, String)], id: &str) -> &'l str {
    list.iter().find(|(name, _)| name == id).map_or("", |(_, description)| description)
}

/// Whether the upstream chat lives on after the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversation {
    /// A fresh chat, deleted afterwards; history is merged into one prompt.
    Ephemeral,
    /// A fresh chat that is kept; its id is returned so later turns can continue it.
    Keep,
    /// Continue a chat kept earlier: only the new turn is sent, and the chat is kept.
    Continue(String),
}

/// A chat request, whatever dialect it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The model name exactly as the client sent it (echoed back).
    pub model: String,
    pub mode: Mode,
    pub messages: Vec<Message>,
    pub conversation: Conversation,
    pub stream: bool,
    /// Tools the client offers (emulated: Kimi's web chat has none, `docs/tools.md`).
    pub tools: Vec<Tool>,
    pub tool_choice: ToolChoice,
    /// Whether several calls may come in one answer.
    pub parallel_tool_calls: bool,
    /// Text, or JSON (with a schema): `output.rs`.
    pub output: Output,
    /// The tools as the model is told of them, once the tool layer prepared the request; the
    /// backend places it as the account takes tools ([`ToolOffer`], `docs/tools.md` §3).
    pub tool_prompt: Option<ToolPrompt>,
}

/// The tool section of a prepared request, in both places a backend may put it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolPrompt {
    /// For the newest user turn, where the tools are functions the user's program runs.
    pub turn: String,
    /// For Kimi's system prompt field, beside the tools declared to Kimi by name.
    pub system: String,
    /// The one way to offer them (the doctor's probe tries each), else the account's.
    pub only: Option<ToolOffer>,
    /// The chat already holds the section (an agent session's continued chat): neither place
    /// gets it again; natively declared tools are declared again by name. Set on a request
    /// before the tool layer prepares it, which keeps it.
    pub in_chat: bool,
}

impl ToolPrompt {
    /// The mark a request carries into the tool layer when its chat already holds the section.
    pub fn already_in_chat() -> ToolPrompt {
        ToolPrompt { turn: String::new(), system: String::new(), only: None, in_chat: true }
    }
}

/// How the tools of one request were offered to the model (`docs/tools.md` §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolOffer {
    /// Declared to Kimi as device tools, their schemas and the call form in the system prompt.
    Native,
    /// Described in the newest user turn.
    Prompt,
}

impl ToolOffer {
    pub fn name(self) -> &'static str {
        match self {
            ToolOffer::Native => "native",
            ToolOffer::Prompt => "prompt",
        }
    }
}

impl Request {
    /// An honest estimate of the prompt's size in tokens.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        let tokens: u64 = self.messages.iter().map(|m| estimate_tokens(&m.joined_text())).sum();
        tokens.max(1)
    }
}

/// Why the answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Stop,
    /// Kimi stopped at its length limit (and auto-continue gave up).
    Length,
    /// The answer ended with tool calls for the client to run.
    ToolCalls,
}

/// One thing the backend learned from Kimi, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The upstream chat id; arrives before any content.
    ConversationId(String),
    /// A piece of the answer.
    Text(String),
    /// A piece of the model's reasoning, before the answer.
    Thinking(String),
    /// A web search result the answer draws on.
    Citation { title: String, url: String },
    /// Kimi is still working (a keep-alive): a dialect may tell the client so.
    Heartbeat,
    /// The model asks the client to run a tool (complete, with its dialect id set).
    ToolCall(ToolCall),
    /// The answer is complete; nothing follows.
    Finish(Finish),
    /// How the backend offered the request's tools (before any content; for the tool layer).
    ToolsOffered(ToolOffer),
}

/// The kind of a failure, from which each dialect picks its status code and error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    /// The conversation is longer than Kimi takes (clients compact it on this).
    ContextLength,
    Authentication,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    RateLimited,
    /// Kimi (or this server) is busy: retry later.
    Overloaded,
    /// Kimi answered with an error or with something that is not its protocol.
    Upstream,
    Timeout,
    Internal,
    /// The client's request body did not arrive in time.
    RequestTimeout,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::ContextLength => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::RateLimited => 429,
            ErrorKind::Internal => 500,
            ErrorKind::Upstream => 502,
            ErrorKind::Overloaded => 503,
            ErrorKind::Timeout => 504,
            ErrorKind::RequestTimeout => 408,
        }
    }
}

/// A failure in neutral terms. The message never holds a token or a cookie.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// Seconds the client should wait before retrying (`Retry-After`), when known.
    pub retry_after: Option<u64>,
    /// Whether trying the same request again may help (a model the account's plan does not
    /// include will not: clients are told not to retry).
    pub retryable: bool,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), retry_after: None, retryable: true }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidRequest, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

/// An honest token estimate (Kimi reports none): about four ASCII bytes per token and one
/// token per other character (CJK text is close to that). Never 0: clients break on 0.
pub fn estimate_tokens(text: &str) -> u64 {
    let ascii = text.bytes().filter(u8::is_ascii).count() as u64;
    let other = text.chars().filter(|c| !c.is_ascii()).count() as u64;
    (ascii.div_ceil(4) + other).max(1)
}

#[cfg(test)]
mod sink_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_combine_flags() {
        let mode = Mode::from_model_name("kimi-search-silent");
        assert!(mode.search && mode.silent && !mode.research && !mode.thinking);
        let mode = Mode::from_model_name("kimi-research");
        assert!(mode.research && mode.search);
        assert!(Mode::from_model_name("kimi-k1").thinking);
        assert!(Mode::from_model_name("kimi-k2-thinking").thinking);
        assert!(!Mode::from_model_name("kimi-k2").thinking);
        assert!(Mode::from_model_name("kimi-math").math);
        assert_eq!(Mode::from_model_name("gpt-4o"), Mode::default());
        for (model, max) in [("kimi-k3-max", true), ("KIMI-MAX", true), ("kimi-maxi", false), ("kimi", false)]
        {
            assert_eq!(Mode::from_model_name(model).max_effort, max, "{model}");
        }
    }

    #[test]
    fn agent_ids_are_only_agents() {
        let mode = Mode::from_model_name("coo6l3pkqq4ri39f36bg");
        assert_eq!(mode.agent.as_deref(), Some("coo6l3pkqq4ri39f36bg"));
        // Contains "k1" but is an agent id: no thinking flag.
        let mode = Mode::from_model_name("abk1defghijklmnopqrs");
        assert!(!mode.thinking && mode.agent.is_some());
        assert!(!is_agent_id("coo6l3pkqq4ri39f36bgx"));
        assert!(!is_agent_id("COO6L3PKQQ4RI39F36BG"));
    }

    #[test]
    fn token_estimate_is_never_zero() {
        assert_eq!(estimate_tokens(""), 1);
        assert_eq!(estimate_tokens("abcdefgh"), 2);
        assert_eq!(estimate_tokens("你好"), 2);
    }
}
