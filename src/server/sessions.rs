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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::transcript::{self, Digest, Record, Turns};
use crate::chat::{self, Conversation, Ended, Stop, ToolPrompt};
use crate::kimi::{self, Backend, Credential, Kimi, sha256};

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
    /// Set at shutdown: sessions that end after it are deleted, not kept.
    closed: AtomicBool,
    /// Turns sent as a tail to a session's chat, and as a whole history (a session's first).
    pub tails: AtomicU64,
    pub fulls: AtomicU64,
    /// Sessions whose chat was replaced by a fresh one.
    pub rotations: AtomicU64,
}

/// One session: whose it is, its chat, and the turns its chat holds.
struct Session {
    owner: Digest,
    /// The caller's token (pass-through) to delete the chat with; `None` on the server's pool.
    token: Option<String>,
    frame: Digest,
    /// The conversation id (marked with its account when the pool had a choice).
    chat: String,
    turns: Vec<Digest>,
    answers: u32,
    last_use: Instant,
}

/// A request's part in a session, from [`Sessions::begin`] to [`Sessions::end`].
pub struct Ticket {
    owner: Digest,
    token: Option<String>,
    frame: Digest,
    history: Turns,
    /// The session continued (taken out of the live list while the request runs).
    continued: Option<Session>,
    /// The request with its whole history, to start afresh with.
    full: chat::Request,
}

impl Sessions {
    pub fn new(settings: Settings) -> Self {
        Sessions {
            settings,
            live: Mutex::default(),
            closed: AtomicBool::new(false),
            tails: AtomicU64::new(0),
            fulls: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
        }
    }

    /// Live sessions (those serving a request now are not counted until it ends).
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
        mut run: impl FnMut(chat::Request, &mut Record) -> (Backend, Result<Ended, kimi::Error>),
    ) -> (Backend, Result<Ended, kimi::Error>) {
        let (request, ticket) = self.begin(kimi, credential, caller, request);
        let mut record = Record::default();
        let (backend, result) = run(request, &mut record);
        let Some(ticket) = ticket else { return (backend, result) };
        let Some((again, ticket)) = self.end(kimi, ticket, &record, backend, &result) else {
            return (backend, result);
        };
        let mut record = Record::default();
        let (backend, result) = run(again, &mut record);
        let _never_again = self.end(kimi, ticket, &record, backend, &result);
        (backend, result)
    }

    /// How a request runs: unchanged (no session), as a session's first turn (a kept chat with
    /// the whole history), or as a continued session's tail.
    fn begin(
        &self,
        kimi: &Kimi,
        credential: Credential<'_>,
        caller: &str,
        mut request: chat::Request,
    ) -> (chat::Request, Option<Ticket>) {
        let history = transcript::turns(&request.messages);
        let candidate = self.settings.limit > 0
            && !self.closed.load(Ordering::Acquire)
            && request.conversation == Conversation::Ephemeral
            && !request.output.is_json()
            && history.len() >= 2
            && history.assistant.last() == Some(&false);
        if !candidate {
            return (request, None);
        }
        let owner = sha256::digest(caller.as_bytes());
        let frame = transcript::frame(&request);
        let (found, stale) = self.take(&owner, &frame, &history);
        self.delete(kimi, stale);
        let token = match credential {
            Credential::Tokens(token) => Some(token.to_string()),
            Credential::Pool => None,
        };
        let mut full = request.clone();
        full.conversation = Conversation::Keep;
        let ticket = |continued| Ticket { owner, token, frame, history: history.clone(), continued, full };
        let Some(session) = found else {
            request.conversation = Conversation::Keep;
            return (request, Some(ticket(None)));
        };
        // The tail: the turn after the session's last answer, its tool results named.
        transcript::name_results(&mut request.messages);
        let from = history.starts[session.turns.len()];
        request.messages.drain(..from);
        request.conversation = Conversation::Continue(session.chat.clone());
        request.tool_prompt = Some(ToolPrompt::already_in_chat());
        (request, Some(ticket(Some(session))))
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
    ) -> Option<(chat::Request, Ticket)> {
        let continued = ticket.continued.take();
        let chat = record.conversation.clone().or_else(|| continued.as_ref().map(|s| s.chat.clone()));
        match result {
            Ok(Ended::Complete | Ended::Stopped(Stop::ToolCalls)) => {
                self.answered(kimi, ticket, continued, chat?, record);
                None
            }
            // The client left: Kimi's answer was stopped (`CancelChat`) and a Connect chat's next
            // turn still goes after the last whole answer, so the session stays as it was; the
            // legacy API has no such parent, and a new session holds nothing to go on from.
            Ok(Ended::Stopped(_)) => {
                match continued {
                    Some(session) if backend == Backend::Connect => self.keep(kimi, session),
                    _ => self.delete(kimi, chat.map(|chat| (ticket.token, chat)).into_iter().collect()),
                }
                None
            }
            Err(_) => {
                self.delete(kimi, chat.map(|chat| (ticket.token.clone(), chat)).into_iter().collect());
                let again = continued.is_some() && !record.delivered;
                if again {
                    self.rotations.fetch_add(1, Ordering::Relaxed);
                }
                again.then(|| (ticket.full.clone(), ticket))
            }
        }
    }

    /// A session's turn answered: its chat now holds the history and the answer.
    fn answered(
        &self,
        kimi: &Kimi,
        ticket: Ticket,
        continued: Option<Session>,
        chat: String,
        record: &Record,
    ) {
        let counter = if continued.is_some() { &self.tails } else { &self.fulls };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut turns = ticket.history.digests;
        turns.push(transcript::answer_turn(&record.text, &record.calls));
        let session = Session {
            owner: ticket.owner,
            token: ticket.token,
            frame: ticket.frame,
            chat,
            turns,
            answers: continued.map_or(0, |s| s.answers) + 1,
            last_use: Instant::now(),
        };
        self.keep(kimi, session);
    }

    /// Takes out the session whose turns the history continues, if any, and the sessions the
    /// history replaces (same caller and frame, same first turn, then a difference — an edit or a
    /// compaction — or grown past the turn limit) and the idle ones, to delete.
    fn take(
        &self,
        owner: &Digest,
        frame: &Digest,
        history: &Turns,
    ) -> (Option<Session>, Vec<(Option<String>, String)>) {
        let mut live = self.lock();
        let now = Instant::now();
        let mut stale = Vec::new();
        let mut found = None;
        let mut index = 0;
        while index < live.len() {
            let session = &live[index];
            let idle = now.duration_since(session.last_use) >= self.settings.idle;
            let same = session.owner == *owner && session.frame == *frame;
            let continues = same
                && session.turns.len() + 1 == history.len()
                && history.digests.starts_with(&session.turns);
            let replaced = same && !continues && session.turns.first() == history.digests.first();
            if continues && found.is_none() && !idle {
                let session = live.remove(index);
                if session.answers >= self.settings.max_turns {
                    self.rotations.fetch_add(1, Ordering::Relaxed);
                    stale.push((session.token, session.chat));
                } else {
                    found = Some(session);
                }
                continue;
            }
            if idle || replaced {
                let session = live.remove(index);
                if replaced && !idle {
                    self.rotations.fetch_add(1, Ordering::Relaxed);
                }
                stale.push((session.token, session.chat));
                continue;
            }
            index += 1;
        }
        (found, stale)
    }

    /// Keeps a session that just answered (the least recently used goes when there are too
    /// many); after shutdown began, deletes its chat instead.
    fn keep(&self, kimi: &Kimi, session: Session) {
        if self.closed.load(Ordering::Acquire) {
            return self.delete(kimi, vec![(session.token, session.chat)]);
        }
        let evicted = {
            let mut live = self.lock();
            live.push(session);
            let mut evicted = Vec::new();
            while live.len() > self.settings.limit {
                let oldest = (0..live.len()).min_by_key(|&i| live[i].last_use).unwrap_or(0);
                let session = live.remove(oldest);
                evicted.push((session.token, session.chat));
            }
            evicted
        };
        self.delete(kimi, evicted);
    }

    /// Deletes the idle sessions' chats (the janitor's round).
    pub fn sweep(&self, kimi: &Kimi) {
        let stale: Vec<_> = {
            let mut live = self.lock();
            let idle = self.settings.idle;
            let (gone, kept) =
                std::mem::take(&mut *live).into_iter().partition(|s| s.last_use.elapsed() >= idle);
            *live = kept;
            gone
        };
        self.delete(kimi, stale.into_iter().map(|s: Session| (s.token, s.chat)).collect());
    }

    /// At shutdown: every live session's chat deleted; sessions ending later are deleted too.
    pub fn close(&self, kimi: &Kimi) -> usize {
        self.closed.store(true, Ordering::Release);
        let all: Vec<_> = std::mem::take(&mut *self.lock()).into_iter().map(|s| (s.token, s.chat)).collect();
        let count = all.len();
        self.delete(kimi, all);
        count
    }

    /// How often the janitor looks for idle sessions.
    pub fn tick(&self) -> Duration {
        (self.settings.idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(30))
    }

    fn delete(&self, kimi: &Kimi, chats: Vec<(Option<String>, String)>) {
        for (token, chat) in chats {
            let credential = token.as_deref().map_or(Credential::Pool, Credential::Tokens);
            if let Err(error) = kimi.delete_conversation(credential, &chat) {
                eprintln!("sessions: could not delete a session's chat: {error}");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Session>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
