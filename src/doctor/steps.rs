//! The doctor's steps, in order, and the run that goes through them on one account. A step is
//! a name and a function of the [`Context`] that returns a [`Verdict`]: adding a step is one
//! entry in [`STEPS`]. Until the login has passed, a failed step ends the run (nothing can be
//! checked without a login); after it, every step runs whatever the others found.

use std::time::Instant;

use super::chats::{self, Ask};
use super::report::{Line, Outcome, Report, Verdict};
use super::tools;
use crate::chat;
use crate::kimi::{self, Credential, Kimi, TokenCheck};

/// One step: its name (the first word of its line) and what it does.
pub struct Step {
    pub name: &'static str,
    pub run: fn(&mut Context<'_>) -> Verdict,
}

/// The steps, in the order they run.
pub const STEPS: &[Step] = &[
    Step { name: "token", run: token },
    Step { name: "proxy", run: proxy },
    Step { name: "login", run: login },
    Step { name: "models", run: models },
    Step { name: "credits", run: credits },
    Step { name: "chat", run: |c| chats::run(c, &Ask::CHAT) },
    Step { name: "stream", run: |c| chats::run(c, &Ask::STREAM) },
    Step { name: "search", run: |c| chats::run(c, &Ask::SEARCH) },
    Step { name: "thinking", run: |c| chats::run(c, &Ask::THINKING) },
    Step { name: "k3", run: |c| chats::run(c, &Ask::K3) },
    Step { name: "tools", run: |c| tools::probe(c.kimi, c.token, c.tools) },
    Step { name: "deletion", run: deletion },
    Step { name: "unknown", run: unknown },
];

/// What the steps share: the Kimi client (its login cache is the one that serves chats), the
/// account's token, and what earlier steps found.
pub struct Context<'a> {
    pub kimi: &'a Kimi,
    pub token: &'a str,
    /// The tool templates the server uses (the tool probe offers tools with them).
    pub tools: &'a chat::tools::Settings,
    /// Whether the login may rotate a 2026 refresh token whose newest rotation this process
    /// does not hold.
    may_rotate: bool,
    logged_in: bool,
    held_back: bool,
    /// This thread's chat counts before the first step (`deletion` compares).
    chats_before: (u64, u64, u64),
}

/// Runs every step on the account of `token`, handing each line to `on_line` as it is found.
pub fn check(
    kimi: &Kimi,
    tools: &chat::tools::Settings,
    token: &str,
    may_rotate: bool,
    on_line: &mut dyn FnMut(&Line),
) -> Report {
    let mut context = Context {
        kimi,
        token,
        tools,
        may_rotate,
        logged_in: false,
        held_back: false,
        chats_before: kimi.chat_counts_on_this_thread(),
    };
    let mut report = Report { account: kimi::fingerprint(token), ..Report::default() };
    for step in STEPS {
        let started = Instant::now();
        let verdict = (step.run)(&mut context);
        let line = Line::new(step.name, verdict, started.elapsed());
        on_line(&line);
        let stop = line.outcome == Outcome::Fail && !context.logged_in;
        report.lines.push(line);
        if stop {
            break;
        }
    }
    report.logged_in = context.logged_in;
    report.held_back = context.held_back;
    report
}

/// What the token is, read from the token alone (Kimi is not asked yet).
fn token(context: &mut Context<'_>) -> Verdict {
    let account = kimi::fingerprint(context.token);
    if context.token.contains(',') {
        return Verdict::fail("give one token: the doctor checks one account at a time");
    }
    match Kimi::token_kind(context.token) {
        Ok("unknown") => Verdict::pass(format!(
            "a token of no known shape, account {account}: tried as a 2026 refresh_token, then as a legacy one"
        )),
        Ok(kind) => Verdict::pass(format!("{kind}, account {account}")),
        Err(error) => Verdict::fail(format!("{error} (account {account})")),
    }
}

/// The proxy the account's calls go through (its own from the tokens file, else
/// `--upstream-proxy`), or that there is none; never its credentials.
fn proxy(context: &mut Context<'_>) -> Verdict {
    match context.kimi.proxy_of(context.token) {
        Some(proxy) => Verdict::pass(format!("through {proxy}")),
        None => Verdict::pass("none: straight to Kimi"),
    }
}

/// Whether Kimi accepts the login, through the login cache that serves chats (a rotation is
/// saved); not tried when it would rotate a 2026 login this process does not hold, unless
/// allowed.
fn login(context: &mut Context<'_>) -> Verdict {
    if !context.may_rotate && context.kimi.rotates_a_login_it_does_not_hold(context.token) {
        context.held_back = true;
        return Verdict::fail(
            "not tried: this 2026 refresh_token's newest rotation is not in the state directory, and \
             logging in would rotate it (Kimi ends the old one at once)",
        );
    }
    let check: Option<TokenCheck> = context.kimi.check_token(context.token).pop();
    match check {
        Some(check) if check.live => {
            context.logged_in = true;
            let saved = if check.kind == "web refresh_token" { " (its rotation is saved)" } else { "" };
            let note = check.note.map(|n| format!("; {n}")).unwrap_or_default();
            Verdict::pass(format!("Kimi accepts the login{saved}{note}"))
        }
        Some(check) => Verdict::fail(check.problem.unwrap_or_else(|| "Kimi refused the token".into())),
        None => Verdict::fail("nothing to log in with"),
    }
}

/// The account's model catalogue: which models it lists, which is the default, whether Kimi's
/// own list was read or the built-in one stood in (`docs/kimi-protocol.md` §7.1).
fn models(context: &mut Context<'_>) -> Verdict {
    let Some(catalogue) = context.kimi.catalogue(Credential::Tokens(context.token)) else {
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
fn credits(context: &mut Context<'_>) -> Verdict {
    match context.kimi.credits(context.token) {
        None => Verdict::note("no credits on this token's API (a legacy token)"),
        Some(Err(error)) => Verdict::note(format!("Kimi did not say ({error})")),
        Some(Ok(credits)) => {
            let reset = credits.resets_at.map_or_else(|| "an unknown date".to_string(), kimi::rfc3339);
            let left = format!("{:.0}% left, reset {reset}", credits.remaining_ratio() * 100.0);
            if credits.used_up() { Verdict::note(format!("used up: {left}")) } else { Verdict::pass(left) }
        }
    }
}

/// Every chat the steps opened was deleted: counted on this thread alone, so that a server's
/// other requests meanwhile do not count.
fn deletion(context: &mut Context<'_>) -> Verdict {
    let (to_delete, deleted, failed) = context.kimi.chat_counts_on_this_thread();
    let before = context.chats_before;
    let (to_delete, deleted, failed) = (to_delete - before.0, deleted - before.1, failed - before.2);
    if failed == 0 && deleted == to_delete {
        Verdict::pass(format!("{deleted} of {to_delete} chats deleted: nothing left in the account"))
    } else {
        Verdict::fail(format!("{deleted} of {to_delete} chats deleted, {failed} could not be"))
    }
}

/// What Kimi sent that this server does not know, by kind and name (`docs/kimi-protocol.md`
/// §7.12): the first sign of Kimi's next change.
fn unknown(_: &mut Context<'_>) -> Verdict {
    let seen = kimi::drift::seen();
    if seen.is_empty() {
        return Verdict::pass("Kimi sent nothing this server does not know");
    }
    let names: Vec<String> = seen.iter().map(|(what, name, n)| format!("{what} {name} ×{n}")).collect();
    Verdict::note(format!("Kimi sent what this server does not know: {}", names.join(", ")))
}
