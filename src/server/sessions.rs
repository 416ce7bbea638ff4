//! Agent sessions on one Kimi chat (README "Agent sessions"): an agent loop sends its whole
//! history every turn; the server keeps one Kimi chat per conversation and sends it only what is
//! new. Stateless for the client: a request continues a session when the session's turns
//! (`transcript.rs`: digests, never the text) are its history but for one last turn of the user
//! or of tool results, and the caller (the digest of its key or token) and the frame (model,
//! system messages, tools) are the same. The request then goes to the session's chat
//! (`Conversation::Continue`, on the account it lives on) with that tail alone; any other request
//! with history starts a session: a kept chat with the whole history, as before.
//!
//! A session rotates (a fresh chat with the whole history, the old chat deleted) when its
//! history was edited (same first turn, then a difference), when its chat fails before anything
//! reached the client (too long, unknown to Kimi, its account dead or cooling down), and after
//! `--session-max-turns`. Sessions idle for `--session-idle` are deleted from Kimi, at most
//! `--sessions` live (the least recently used deleted first), and every one at shutdown.
//! Nothing is written to disk. `--sessions 0` turns them off.
//!
//! A session is listed while its turn runs: a client that sends its next turn as soon as the
//! answer arrived (while the last turn still stops Kimi's answer) waits for it, 5 s at most,
//! instead of starting another session.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::prefix::{self, Mark};
use super::transcript::{self, Digest, Record, Turns};
use crate::chat::{self, Conversation, Ended, Stop, ToolPrompt};
use crate::kimi::{self, Backend, Credential, Kimi, sha256};

/// The caller a session belongs to: the SHA-256 of its credential.
type Owner = [u8; 32];

/// How long a request waits for the session it continues while that session's previous turn
/// is still ending (its answer already reached the client; Kimi's answer is being stopped).
const WAIT_FOR_SESSION: Duration = Duration::from_secs(5);

/// What the flags say of sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Live sessions at most; 0 turns sessions off.
    pub limit: usize,
    /// Turns a session's chat takes before a fresh one starts.
    pub max_turns: u32,
    /// How long an unused session lives.
    pub idle: Duration,
}

/// The live sessions and what they did.
pub struct Sessions {
    settings: Settings,
    live: Mutex<Vec<Session>>,
    /// Signalled whenever a session stops being in use.
    freed: Condvar,
    next_id: AtomicU64,
    /// Set at shutdown: sessions that end after it are deleted, not kept.
    closed: AtomicBool,
    /// Turns sent as a tail to a session's chat, and as a whole history (a session's first).
    pub tails: AtomicU64,
    pub fulls: AtomicU64,
    /// Sessions whose chat was replaced by a fresh one.
    pub rotations: AtomicU64,
    /// Continued turns read from an elided body (`prefix.rs`).
    pub elided: AtomicU64,
}

/// One session: whose it is, its chat, and the turns its chat holds.
struct Session {
    id: u64,
    /// A request is running on it: the turns of that request (its answer not yet known).
    running: Option<Vec<Digest>>,
    owner: Owner,
    /// The caller's token (pass-through) to delete the chat with; `None` on the server's pool.
    token: Option<String>,
    frame: Digest,
    /// The conversation id (marked with its account when the pool had a choice); empty while
    /// a new session's first turn runs.
    chat: String,
    turns: Vec<Digest>,
    /// Where its last request's history lay in the body, and under which member name.
    mark: Option<(Mark, &'static str)>,
    answers: u32,
    last_use: Instant,
}

/// The session a request continues: its chat and its answers so far.
struct Continued {
    chat: String,
    answers: u32,
}

/// A request's part in a session, from [`Sessions::begin`] to [`Sessions::end`].
pub struct Ticket {
    /// The session's id in the live list (listed, in use, from the start of the request).
    id: u64,
    owner: Owner,
    token: Option<String>,
    frame: Digest,
    history: Turns,
    continued: Option<Continued>,
    /// A continued session's request with its whole history, to start afresh with (parsed
    /// again from the body when it came elided).
    full: Option<chat::Request>,
    mark: Option<(Mark, &'static str)>,
}

/// A request's body as it came, for a session to go on from without parsing what its chat
/// holds (`prefix.rs`): the member holding the history, the body elided to its new messages
/// when it continues a session byte for byte ([`Sessions::prior`]; what was parsed then), and
/// how to parse the whole body when a fresh chat needs all of it.
pub struct Raw<'a> {
    pub body: &'a [u8],
    pub key: &'static str,
    /// Taken by the first request run with it (a JSON answer's corrective turn runs again).
    pub prior: Cell<Option<Prior>>,
    pub whole: &'a dyn Fn() -> Result<chat::Request, chat::Error>,
}

/// What a request's messages say for a session: its turns, its frame, and whether the request
/// holds only the messages after a session's last request (an elided body).
struct Seen {
    history: Turns,
    frame: Digest,
    elided: bool,
}

/// A body elided to the messages after a session's last request.
pub struct Prior {
    pub body: Vec<u8>,
    /// The session's turns before its last answer (what the elided messages held), that answer,
    /// its frame, and the mark of the whole body.
    turns: Vec<Digest>,
    answer: Digest,
    frame: Digest,
    mark: Mark,
}

impl Prior {
    /// The history: the session's turns, then those of the new messages, when these start
    /// with the session's last answer (then the turns are those of the whole body).
    fn joined(&self, messages: &[chat::Message]) -> Option<Turns> {
        let rest = transcript::turns(messages);
        if rest.digests.first() != Some(&self.answer) || rest.assistant.first() != Some(&true) {
            return None;
        }
        let known = self.turns.len();
        Some(Turns {
            digests: [&self.turns[..], &rest.digests].concat(),
            assistant: [vec![false; known], rest.assistant].concat(),
            starts: [vec![0; known], rest.starts].concat(),
        })
    }
}

/// A chat to delete, with the token of its caller (pass-through) or none (the pool).
type Doomed = (Option<String>, String);

/// The session a request runs in (its id), the session it continues with the index of the
/// tail's first turn, if any, and the chats to delete.
type Taken = ((u64, Option<(Continued, usize)>), Vec<Doomed>);

impl Sessions {
    pub fn new(settings: Settings) -> Self {
        Sessions {
            settings,
            live: Mutex::default(),
            freed: Condvar::new(),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            tails: AtomicU64::new(0),
            fulls: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
            elided: AtomicU64::new(0),
        }
    }

    /// Live sessions.
    pub fn live(&self) -> usize {
        self.lock().len()
    }

    /// Runs a request, in a session when it is one: `run` sends a request to Kimi and records
    /// the answer that reached the client. A continued session whose chat failed before anything
    /// reached the client is run once more as a fresh session with the whole history.
    pub fn serve(
        &self,
        kimi: &Kimi,
        credential: Credential<'_>,
        caller: &str,
        request: chat::Request,
        raw: &Raw<'_>,
        mut run: impl FnMut(chat::Request, &mut Record) -> (Backend, Result<Ended, kimi::Error>),
    ) -> (Backend, Result<Ended, kimi::Error>) {
        let (request, ticket) = match self.begin(kimi, credential, caller, request, raw.prior.take(), raw) {
            Ok(begun) => begun,
            Err(error) => return (Backend::None, Err(unreadable(&error))),
        };
        let mut record = Record::default();
        let (backend, result) = run(request, &mut record);
        let Some(ticket) = ticket else { return (backend, result) };
        let Some((again, ticket)) = self.end(kimi, ticket, &record, backend, &result, raw) else {
            return (backend, result);
        };
        let mut record = Record::default();
        let (backend, result) = run(again, &mut record);
        let _never_again = self.end(kimi, ticket, &record, backend, &result, raw);
        (backend, result)
    }

    /// The body elided to what follows one of the caller's sessions, when it continues one byte
    /// for byte (`prefix.rs`): parsed instead of the whole body. A body that goes on from a
    /// session whose turn is still ending (its answer reached the client, Kimi's is being
    /// stopped) waits for that turn a little, as [`Self::take`] would.
    pub fn prior(&self, caller: &str, key: &'static str, body: &[u8]) -> Option<Prior> {
        if self.settings.limit == 0 || self.closed.load(Ordering::Acquire) {
            return None;
        }
        let owner = sha256::digest(caller.as_bytes());
        let deadline = Instant::now() + WAIT_FOR_SESSION;
        loop {
            let mut waits = Vec::new();
            let marked = self.marked(&owner, key);
            let marks: Vec<Mark> = marked.iter().map(|(_, _, mark, _, _)| mark.clone()).collect();
            if let Some((index, body, mark)) = prefix::elide(body, key, &marks) {
                let (id, running, _, mut turns, frame) = marked.into_iter().nth(index)?;
                if !running {
                    let answer = turns.pop()?;
                    return Some(Prior { body, turns, answer, frame, mark });
                }
                waits.push(id);
            }
            let now = Instant::now();
            if waits.is_empty() || now >= deadline {
                return None;
            }
            // Looked at again under the lock the wait releases: its end may have come between.
            let live = self.lock();
            if live.iter().any(|s| waits.contains(&s.id) && s.running.is_some()) {
                drop(self.freed.wait_timeout(live, deadline - now));
            }
        }
    }

    /// The caller's sessions with a mark under `key`: each one's id, whether it runs, its mark,
    /// turns and frame.
    fn marked(&self, owner: &Owner, key: &str) -> Vec<(u64, bool, Mark, Vec<Digest>, Digest)> {
        let live = self.lock();
        let mine = live.iter().filter(|s| s.owner == *owner && s.turns.len() >= 2);
        mine.filter_map(|s| {
            let (mark, _) = s.mark.as_ref().filter(|(_, of)| *of == key)?;
            Some((s.id, s.running.is_some(), mark.clone(), s.turns.clone(), s.frame))
        })
        .collect()
    }

    /// How a request runs: unchanged (no session), as a session's first turn (a kept chat with
    /// the whole history), or as a continued session's tail. A request parsed from an elided
    /// body that does not continue its session is parsed whole and looked at again.
    fn begin(
        &self,
        kimi: &Kimi,
        credential: Credential<'_>,
        caller: &str,
        request: chat::Request,
        prior: Option<Prior>,
        raw: &Raw<'_>,
    ) -> Result<(chat::Request, Option<Ticket>), chat::Error> {
        let Some(prior) = prior else {
            let (history, frame) = (transcript::turns(&request.messages), transcript::frame(&request));
            let mark = || {
                let span = prefix::history_span(raw.body, raw.key)?;
                Some((Mark::of(raw.body, &span)?, raw.key))
            };
            return Ok(self.begin_with(
                kimi,
                credential,
                caller,
                request,
                Seen { history, frame, elided: false },
                mark,
            ));
        };
        let history = prior.joined(&request.messages).filter(|history| candidate(&request, history));
        let Some(history) = history else {
            return self.begin(kimi, credential, caller, (raw.whole)()?, None, raw);
        };
        let mark = || Some((prior.mark.clone(), raw.key));
        let seen = Seen { history, frame: prior.frame, elided: true };
        match self.begin_with(kimi, credential, caller, request, seen, mark) {
            (tail, Some(ticket)) if ticket.continued.is_some() => {
                self.elided.fetch_add(1, Ordering::Relaxed);
                Ok((tail, Some(ticket)))
            }
            // A fresh chat (a rotation), or no session after all (shutdown began): the whole
            // history.
            (_, ticket) => {
                let whole = (raw.whole)()?;
                Ok((if ticket.is_some() { Self::keep_whole(whole) } else { whole }, ticket))
            }
        }
    }

    /// [`Self::begin`] once what the messages say is known; `mark`: where the next request of
    /// its session may go on from.
    fn begin_with(
        &self,
        kimi: &Kimi,
        credential: Credential<'_>,
        caller: &str,
        mut request: chat::Request,
        Seen { history, frame, elided }: Seen,
        mark: impl FnOnce() -> Option<(Mark, &'static str)>,
    ) -> (chat::Request, Option<Ticket>) {
        let limited = self.settings.limit > 0 && !self.closed.load(Ordering::Acquire);
        if !limited || !candidate(&request, &history) {
            return (request, None);
        }
        let owner = sha256::digest(caller.as_bytes());
        let token = match credential {
            Credential::Tokens(token) => Some(token.to_string()),
            Credential::Pool => None,
        };
        let (found, stale) = self.take(&owner, &frame, &history, &token);
        self.delete(kimi, stale);
        let (mut id, mut found) = found;
        if let Some((continued, _)) = found.take_if(|(c, _)| !kimi.kept_chat_can_stay(credential, &c.chat)) {
            // Its account cannot take the turn now and another can: a fresh chat there.
            self.rotations.fetch_add(1, Ordering::Relaxed);
            self.drop_session(kimi, id, Some((token.clone(), continued.chat)));
            id = self.list_new(&owner, &frame, &token, &history);
        }
        let ticket = Ticket { id, owner, token, frame, history, continued: None, full: None, mark: mark() };
        let Some((continued, from)) = found else {
            return (Self::keep_whole(request), Some(ticket));
        };
        // The tail: the turn after the session's last answer, its tool results named. The whole
        // request is kept aside, not copied (a long history is most of it).
        transcript::name_results(&mut request.messages);
        let messages = std::mem::take(&mut request.messages);
        let mut tail = request.clone();
        tail.messages = messages[ticket.history.starts[from]..].to_vec();
        tail.conversation = Conversation::Continue(continued.chat.clone());
        tail.tool_prompt = Some(ToolPrompt::already_in_chat());
        request.messages = messages;
        let full = (!elided).then(|| Self::keep_whole(request));
        (tail, Some(Ticket { continued: Some(continued), full, ..ticket }))
    }

    fn keep_whole(mut request: chat::Request) -> chat::Request {
        request.conversation = Conversation::Keep;
        request
    }

    /// After a request's answer: the session recorded, or its chat deleted; a request to run
    /// again when a continued session must rotate and the client saw nothing yet.
    fn end(
        &self,
        kimi: &Kimi,
        mut ticket: Ticket,
        record: &Record,
        backend: Backend,
        result: &Result<Ended, kimi::Error>,
        raw: &Raw<'_>,
    ) -> Option<(chat::Request, Ticket)> {
        let continued = ticket.continued.take();
        let id = ticket.id;
        let chat = record.conversation.clone().or_else(|| continued.as_ref().map(|c| c.chat.clone()));
        match (result, chat) {
            (Ok(Ended::Complete | Ended::Stopped(Stop::ToolCalls)), Some(chat)) => {
                self.answered(kimi, ticket, continued, chat, record);
                None
            }
            // The client left: Kimi's answer was stopped (`CancelChat`) and a Connect chat's next
            // turn still goes after the last whole answer, so the session stays as it was; the
            // legacy API has no such parent, and a new session holds nothing to go on from.
            (Ok(Ended::Stopped(Stop::ClientGone)), _)
                if continued.is_some() && backend == Backend::Connect =>
            {
                self.release(id);
                None
            }
            (Ok(_), chat) => {
                self.drop_session(kimi, id, chat.map(|chat| (ticket.token.clone(), chat)));
                None
            }
            (Err(_), chat) => {
                self.drop_session(kimi, id, chat.map(|chat| (ticket.token.clone(), chat)));
                if continued.is_none() || record.delivered {
                    return None;
                }
                let full = ticket.full.take().or_else(|| (raw.whole)().ok().map(Self::keep_whole))?;
                self.rotations.fetch_add(1, Ordering::Relaxed);
                ticket.id = self.list_new(&ticket.owner, &ticket.frame, &ticket.token, &ticket.history);
                Some((full, ticket))
            }
        }
    }

    /// A session's turn answered: its chat now holds the history and the answer.
    fn answered(
        &self,
        kimi: &Kimi,
        ticket: Ticket,
        continued: Option<Continued>,
        chat: String,
        record: &Record,
    ) {
        let counter = if continued.is_some() { &self.tails } else { &self.fulls };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut turns = ticket.history.digests;
        turns.push(record.answer.clone().finish(record.calls.iter()));
        let session = Session {
            id: ticket.id,
            running: None,
            owner: ticket.owner,
            token: ticket.token,
            frame: ticket.frame,
            chat,
            turns,
            mark: ticket.mark,
            answers: continued.map_or(0, |c| c.answers) + 1,
            last_use: Instant::now(),
        };
        self.keep(kimi, session);
    }

    /// Finds the session whose turns the history continues and marks it in use, with the index
    /// of the tail's first turn, or lists a new session in use; waits a little when the history
    /// continues a turn that still runs (its answer reached the client, its turn still ends).
    /// Takes out, to delete, the sessions the history replaces (same caller and frame, same
    /// first turn, then a difference: an edit or a compaction), the one it continues when it
    /// reached the turn limit, and the idle ones.
    fn take(&self, owner: &Owner, frame: &Digest, history: &Turns, token: &Option<String>) -> Taken {
        let deadline = Instant::now() + WAIT_FOR_SESSION;
        let mut live = self.lock();
        let mut stale = Vec::new();
        let mine = |s: &Session| s.owner == *owner && s.frame == *frame;
        let extends = |turns: &[Digest], by: usize| {
            turns.len() + by == history.len() && history.digests.starts_with(turns)
        };
        loop {
            stale.extend(self.expire(&mut live, owner, frame, history));
            let waits = live.iter().any(|s| mine(s) && s.running.as_deref().is_some_and(|r| extends(r, 2)));
            let now = Instant::now();
            if waits && now < deadline {
                live =
                    self.freed.wait_timeout(live, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
                continue;
            }
            let found = live.iter().position(|s| mine(s) && s.running.is_none() && extends(&s.turns, 1));
            if let Some(index) = found.filter(|&i| live[i].answers >= self.settings.max_turns) {
                self.rotations.fetch_add(1, Ordering::Relaxed);
                let session = live.remove(index);
                stale.push((session.token, session.chat));
            } else if let Some(index) = found {
                let session = &mut live[index];
                session.running = Some(history.digests.clone());
                let continued = Continued { chat: session.chat.clone(), answers: session.answers };
                return ((session.id, Some((continued, session.turns.len()))), stale);
            }
            drop(live);
            return ((self.list_new(owner, frame, token, history), None), stale);
        }
    }

    /// Lists a new session whose first turn runs now (so that the next turn finds it).
    fn list_new(&self, owner: &Owner, frame: &Digest, token: &Option<String>, history: &Turns) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push(Session {
            id,
            running: Some(history.digests.clone()),
            owner: *owner,
            token: token.clone(),
            frame: *frame,
            chat: String::new(),
            turns: Vec::new(),
            mark: None,
            answers: 0,
            last_use: Instant::now(),
        });
        id
    }

    /// Takes out the idle sessions and those the history replaces (not those in use).
    fn expire(&self, live: &mut Vec<Session>, owner: &Owner, frame: &Digest, history: &Turns) -> Vec<Doomed> {
        let idle = self.settings.idle;
        let replaced = |s: &Session| {
            s.owner == *owner
                && s.frame == *frame
                && s.turns.first() == history.digests.first()
                && !(s.turns.len() < history.len() && history.digests.starts_with(&s.turns))
        };
        let mut stale = Vec::new();
        let mut index = 0;
        while index < live.len() {
            let session = &live[index];
            let (old, edited) = (session.last_use.elapsed() >= idle, replaced(session));
            if session.running.is_some() || !(old || edited) {
                index += 1;
                continue;
            }
            if edited && !old {
                self.rotations.fetch_add(1, Ordering::Relaxed);
            }
            let session = live.remove(index);
            stale.push((session.token, session.chat));
        }
        stale
    }

    /// Keeps a session that just answered, in place of its earlier state (the least recently
    /// used idle one goes when there are too many); after shutdown began, deletes its chat.
    fn keep(&self, kimi: &Kimi, session: Session) {
        if self.closed.load(Ordering::Acquire) {
            return self.drop_session(kimi, session.id, Some((session.token, session.chat)));
        }
        let evicted = {
            let mut live = self.lock();
            match live.iter().position(|s| s.id == session.id) {
                Some(index) => live[index] = session,
                None => live.push(session),
            }
            let mut evicted = Vec::new();
            while live.len() > self.settings.limit {
                let idle = (0..live.len()).filter(|&i| live[i].running.is_none());
                let Some(oldest) = idle.min_by_key(|&i| live[i].last_use) else { break };
                let session = live.remove(oldest);
                evicted.push((session.token, session.chat));
            }
            evicted
        };
        self.freed.notify_all();
        self.delete(kimi, evicted);
    }

    /// A session is no longer in use, unchanged.
    fn release(&self, id: u64) {
        if let Some(session) = self.lock().iter_mut().find(|s| s.id == id) {
            session.running = None;
        }
        self.freed.notify_all();
    }

    /// A session ends: it leaves the list, and its chat (or the chat a new one made) is deleted.
    fn drop_session(&self, kimi: &Kimi, id: u64, chat: Option<Doomed>) {
        self.lock().retain(|s| s.id != id);
        self.freed.notify_all();
        self.delete(kimi, chat.into_iter().collect());
    }

    /// Deletes the idle sessions' chats (the janitor's round).
    pub fn sweep(&self, kimi: &Kimi) {
        let stale: Vec<Doomed> = {
            let mut live = self.lock();
            let idle = self.settings.idle;
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut *live)
                .into_iter()
                .partition(|s| s.running.is_none() && s.last_use.elapsed() >= idle);
            *live = kept;
            gone.into_iter().map(|s| (s.token, s.chat)).collect()
        };
        self.delete(kimi, stale);
    }

    /// At shutdown: every live session's chat deleted; sessions ending later are deleted too.
    pub fn close(&self, kimi: &Kimi) -> usize {
        self.closed.store(true, Ordering::Release);
        let all: Vec<Doomed> = {
            let mut live = self.lock();
            let (busy, idle): (Vec<_>, Vec<_>) =
                std::mem::take(&mut *live).into_iter().partition(|s| s.running.is_some());
            *live = busy;
            idle.into_iter().map(|s| (s.token, s.chat)).collect()
        };
        let count = all.len();
        self.delete(kimi, all);
        count
    }

    /// How often the janitor looks for idle sessions.
    pub fn tick(&self) -> Duration {
        (self.settings.idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(30))
    }

    fn delete(&self, kimi: &Kimi, chats: Vec<Doomed>) {
        for (token, chat) in chats {
            let credential = token.as_deref().map_or(Credential::Pool, Credential::Tokens);
            if let Err(error) = kimi.delete_conversation(credential, &chat) {
                eprintln!("sessions: could not delete a session's chat: {error}");
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Session>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a request may run in a session: history with a new turn of the user's at its end,
/// no conversation of its own, no JSON output.
fn candidate(request: &chat::Request, history: &Turns) -> bool {
    request.conversation == Conversation::Ephemeral
        && !request.output.is_json()
        && history.len() >= 2
        && history.assistant.last() == Some(&false)
}

/// A body that read well elided but not whole (never seen: both are the same bytes around).
fn unreadable(error: &chat::Error) -> kimi::Error {
    kimi::Error::Rejected(format!("the request's whole history could not be read: {}", error.message))
}
