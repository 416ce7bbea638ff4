//! `kimi-free-api doctor [TOKEN]`: one round trip per step against the configured Kimi, one
//! line each with its time and a verdict, so that a user can tell "my token" from "Kimi
//! changed", and paste the lines into a bug report. The token is never printed (its
//! fingerprint is); every chat the steps open is deleted; a rotation of a 2026 login is saved
//! in the state directory, where the server finds it. Kimi is reached as the server would
//! reach it for this token: through its own proxy if the tokens file names one, else through
//! `--upstream-proxy`; the `proxy` line names it (never its credentials).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::chat::{self, Conversation, Event, Flow, Message, Mode, Role, Sink, ToolChoice};
use crate::config::Config;
use crate::kimi::{self, Credential, Kimi};

/// What one step found.
struct Verdict {
    ok: bool,
    /// A finding that is neither a pass nor a failure (a paid-only model on a free account).
    note: bool,
    detail: String,
}

impl Verdict {
    fn pass(detail: impl Into<String>) -> Self {
        Verdict { ok: true, note: false, detail: detail.into() }
    }

    fn fail(detail: impl Into<String>) -> Self {
        Verdict { ok: false, note: false, detail: detail.into() }
    }

    fn note(detail: impl Into<String>) -> Self {
        Verdict { ok: true, note: true, detail: detail.into() }
    }
}

/// Runs the steps and prints one line each; exit 0 when all pass.
pub fn run(config: &Config, token: Option<&str>) -> ExitCode {
    let Some(token) = token.filter(|t| !t.contains(',')) else {
        eprintln!("doctor: give one Kimi token: kimi-free-api doctor TOKEN (or set KIMI_TOKEN)");
        return ExitCode::from(2);
    };
    let (kimi, problem) = Kimi::new(config.kimi_settings());
    if let Some(problem) = problem {
        println!("note       {problem}");
    }
    match account_proxies(config) {
        Ok(entries) => kimi.set_account_proxies(&entries),
        Err(why) => println!("note       the accounts' own proxies are not used: {why}"),
    }
    let mut failed = Vec::new();
    let mut step = |name: &'static str, verdict: Verdict, took: Duration| {
        let mark = match (verdict.ok, verdict.note) {
            (true, false) => "ok  ",
            (true, true) => "note",
            (false, _) => "FAIL",
        };
        println!("{name:<10} {mark} {} ({} ms)", verdict.detail, took.as_millis());
        if !verdict.ok {
            failed.push(name);
        }
    };
    let started = Instant::now();
    let check = kimi.check_token(token).pop();
    let took = started.elapsed();
    let login_ok = check.as_ref().is_some_and(|c| c.live);
    step("token", describe(token, check.as_ref()), Duration::ZERO);
    step("proxy", proxy(check.as_ref()), Duration::ZERO);
    step("login", login(check.as_ref()), took);
    if login_ok {
        let started = Instant::now();
        step("models", models(&kimi, token), started.elapsed());
        let started = Instant::now();
        step("credits", credits(&kimi, token), started.elapsed());
        for (name, model, stream) in STEPS {
            let started = Instant::now();
            let verdict = chat_step(&kimi, token, name, model, *stream);
            step(name, verdict, started.elapsed());
        }
        step("deletion", deletion(&kimi), Duration::ZERO);
        step("unknown", unknown(), Duration::ZERO);
    }
    summary(&failed, login_ok)
}

/// The chat steps: name, model, streamed.
const STEPS: &[(&str, &str, bool)] = &[
    ("chat", "kimi", false),
    ("stream", "kimi", true),
    ("search", "kimi-search", true),
    ("thinking", "kimi-thinking", true),
    ("k3", "kimi-k3", true),
];

/// The account's model catalogue: which models it lists, which is the default, whether Kimi's
/// own list was read or the built-in one stood in (`docs/kimi-protocol.md` §7.1).
fn models(kimi: &Kimi, token: &str) -> Verdict {
    let Some(catalogue) = kimi.catalogue(Credential::Tokens(token)) else {
        return Verdict::note("no model catalogue on this token's API (a legacy token)");
    };
    let default = catalogue.default_entry().id.clone();
    let names: Vec<String> = catalogue
        .entries
        .iter()
        .map(|e| {
            let role = if e.id == default {
                ", default"
            } else if e.is_agent() {
                ", agent: paid plans"
            } else {
                ""
            };
            format!("{} ({}{role})", e.id, e.scenario)
        })
        .collect();
    if catalogue.builtin {
        return Verdict::fail(format!("Kimi's catalogue could not be read; built-in: {}", names.join(", ")));
    }
    Verdict::pass(names.join(", "))
}

/// How much of the account's monthly credits is left, and when they start again
/// (`docs/kimi-protocol.md` §7.7).
fn credits(kimi: &Kimi, token: &str) -> Verdict {
    match kimi.credits(token) {
        None => Verdict::note("no credits on this token's API (a legacy token)"),
        Some(Err(error)) => Verdict::note(format!("Kimi did not say ({error})")),
        Some(Ok(credits)) => {
            let reset = credits.resets_at.map_or_else(|| "an unknown date".to_string(), kimi::rfc3339);
            let left = format!("{:.0}% left, reset {reset}", credits.remaining_ratio() * 100.0);
            if credits.used_up() { Verdict::note(format!("used up: {left}")) } else { Verdict::pass(left) }
        }
    }
}

/// What Kimi sent that this server does not know, by kind and name (`docs/kimi-protocol.md`
/// §7.12): the first sign of Kimi's next change.
fn unknown() -> Verdict {
    let seen = kimi::drift::seen();
    if seen.is_empty() {
        return Verdict::pass("Kimi sent nothing this server does not know");
    }
    let names: Vec<String> = seen.iter().map(|(what, name, n)| format!("{what} {name} ×{n}")).collect();
    Verdict::note(format!("Kimi sent what this server does not know: {}", names.join(", ")))
}

fn describe(token: &str, check: Option<&kimi::TokenCheck>) -> Verdict {
    match check {
        Some(check) => {
            let note = check.note.as_deref().map(|n| format!("; {n}")).unwrap_or_default();
            Verdict::pass(format!("{}, account {}{note}", check.kind, check.fingerprint))
        }
        None => Verdict::fail(format!("no token in what was given (account {})", kimi::fingerprint(token))),
    }
}

/// The accounts of the server's tokens file (or `KIMI_TOKENS`), for the proxies their lines
/// name; none when the server has no pool.
fn account_proxies(config: &Config) -> Result<Vec<kimi::Entry>, String> {
    match (&config.tokens_file, config.tokens.0.is_empty()) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("the tokens file cannot be read ({})", e.kind()))?;
            kimi::tokens_file(&text, '\n').map_err(|why| format!("the tokens file: {why}"))
        }
        (None, false) => {
            kimi::tokens_file(&config.tokens.0.join(","), ',').map_err(|why| format!("KIMI_TOKENS: {why}"))
        }
        (None, true) => Ok(Vec::new()),
    }
}

/// The proxy the calls went through, or that there was none.
fn proxy(check: Option<&kimi::TokenCheck>) -> Verdict {
    match check.and_then(|c| c.proxy.as_deref()) {
        Some(proxy) => Verdict::pass(format!("through {proxy}")),
        None => Verdict::pass("none: straight to Kimi"),
    }
}

fn login(check: Option<&kimi::TokenCheck>) -> Verdict {
    match check {
        Some(check) if check.live => Verdict::pass("Kimi accepts the login (a rotation is saved)"),
        Some(check) => {
            Verdict::fail(check.problem.clone().unwrap_or_else(|| "Kimi refused the token".into()))
        }
        None => Verdict::fail("nothing to log in with"),
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

fn chat_step(kimi: &Kimi, token: &str, name: &str, model: &str, stream: bool) -> Verdict {
    let prompt = match name {
        "search" => "Search the web: what is the latest stable version of the Rust language? Answer briefly.",
        "thinking" => "Think step by step: what is 17 * 23? Give only the number at the end.",
        _ => "Reply with the single word OK.",
    };
    let request = chat::Request {
        model: model.into(),
        mode: Mode::from_model_name(model),
        messages: vec![Message::text(Role::User, prompt)],
        conversation: Conversation::Ephemeral,
        stream,
        tools: Vec::new(),
        tool_choice: ToolChoice::Auto,
        parallel_tool_calls: true,
        output: crate::chat::Output::Text,
        tool_prompt: None,
    };
    let mut seen = Seen { started: Some(Instant::now()), ..Seen::default() };
    match kimi.chat(Credential::Tokens(token), &request, &mut seen) {
        (_, Err(kimi::Error::PlanRequired(_))) if name == "k3" => {
            return Verdict::note("needs a paid plan: Kimi refuses K3 to free accounts (`kimi` works)");
        }
        (_, Err(error)) => return Verdict::fail(error.to_string()),
        _ => {}
    }
    judge(name, &seen)
}

fn judge(name: &str, seen: &Seen) -> Verdict {
    let first = seen.first_text.map_or(0, |d| d.as_millis());
    match name {
        _ if seen.text.trim().is_empty() => Verdict::fail("Kimi's answer was empty"),
        "search" if seen.citations == 0 => Verdict::fail("answered, but without citations"),
        "search" => Verdict::pass(format!("{} citations", seen.citations)),
        "thinking" if seen.thinking == 0 => Verdict::fail("answered, but no reasoning came"),
        "thinking" => Verdict::pass(format!("{} bytes of reasoning, then the answer", seen.thinking)),
        "stream" => Verdict::pass(format!("{} pieces, the first after {first} ms", seen.pieces)),
        _ => Verdict::pass(format!("answered {} characters", seen.text.chars().count())),
    }
}

fn deletion(kimi: &Kimi) -> Verdict {
    let (to_delete, deleted, failed) = kimi.chat_counts();
    if failed == 0 && deleted == to_delete {
        Verdict::pass(format!("{deleted} of {to_delete} chats deleted: nothing left in the account"))
    } else {
        Verdict::fail(format!("{deleted} of {to_delete} chats deleted, {failed} could not be"))
    }
}

fn summary(failed: &[&str], login_ok: bool) -> ExitCode {
    if failed.is_empty() {
        println!("doctor: every step passed");
        return ExitCode::SUCCESS;
    }
    if login_ok {
        println!(
            "doctor: {} failed while the login works: Kimi may have changed; paste these lines into a bug report",
            failed.join(", ")
        );
    } else {
        println!("doctor: the token does not work: see the login line above");
    }
    ExitCode::FAILURE
}
