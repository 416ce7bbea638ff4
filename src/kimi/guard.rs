//! The two guards every backend runs a chat under: [`ChatGuard`] deletes the upstream chat on
//! every way out, and [`Progress`] remembers whether the client has seen anything (after
//! which no attempt may be repeated).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Error;
use crate::chat::{Event, Flow, Sink, Stop};

/// How many upstream chats were to be deleted, were deleted, and could not be: what
/// `kimi-free-api doctor` checks ("nothing left behind") and what the server can report.
#[derive(Debug, Default)]
pub struct ChatCounts {
    /// Chats created on Kimi (kept ones included).
    pub created: AtomicU64,
    pub to_delete: AtomicU64,
    pub deleted: AtomicU64,
    pub failed: AtomicU64,
    /// Kept chats whose answer was stopped with `CancelChat` (`docs/kimi-protocol.md` §7.5).
    pub cancelled: AtomicU64,
    /// Bytes of chat requests sent to Kimi: the `Chat` or completion bodies, and attachments.
    pub sent_bytes: AtomicU64,
}

impl ChatCounts {
    /// Counts `bytes` sent to Kimi for a chat.
    pub fn sent(&self, bytes: usize) {
        self.sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Deletes a kept chat now (an agent session's, `Kimi::delete_conversation`), counted as
    /// every deletion is, once more after a failure.
    pub fn delete_now(
        &self,
        chat_id: &str,
        mut delete: impl FnMut(&str) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.to_delete.fetch_add(1, Ordering::Relaxed);
        count_here(0);
        delete_counted(self, chat_id, &mut delete)
    }
}

/// Deletes a chat, once more after a failure, and counts how it went.
fn delete_counted(
    counts: &ChatCounts,
    chat_id: &str,
    delete: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<(), Error> {
    // Once more after a failure: a chat left behind stays in the user's Kimi history (and a
    // shutdown may have interrupted the first attempt; the second uses the agent it spares).
    let result = delete(chat_id).or_else(|_| {
        std::thread::sleep(RETRY_DELETE_AFTER);
        delete(chat_id)
    });
    match &result {
        Ok(()) => {
            counts.deleted.fetch_add(1, Ordering::Relaxed);
            count_here(1);
        }
        Err(error) => {
            eprintln!("kimi: could not delete chat {chat_id}: {error}");
            counts.failed.fetch_add(1, Ordering::Relaxed);
            count_here(2);
        }
    }
    result
}

thread_local! {
    /// This thread's share of the counts, `[to_delete, deleted, failed]`: a chat is created and
    /// deleted on the thread that runs it, so what one caller's chats did can be told apart
    /// from what other requests do meanwhile (the doctor's `deletion` step inside a busy server).
    static ON_THIS_THREAD: Cell<[u64; 3]> = const { Cell::new([0; 3]) };
}

/// `[to_delete, deleted, failed]` of the chats run on this thread since it started.
pub fn counts_on_this_thread() -> [u64; 3] {
    ON_THIS_THREAD.get()
}

fn count_here(which: usize) {
    ON_THIS_THREAD.with(|counts| {
        let mut now = counts.get();
        now[which] += 1;
        counts.set(now);
    });
}

/// Deletes an upstream chat when dropped, so every path out of a request (success, error,
/// client gone, even a panic) cleans up, unless the caller keeps the conversation.
pub struct ChatGuard<'a> {
    chat_id: String,
    keep: bool,
    counts: &'a ChatCounts,
    delete: Box<DeleteChat<'a>>,
}

/// The pause before a failed chat deletion is tried again.
const RETRY_DELETE_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

/// A backend's call that deletes one chat by id.
type DeleteChat<'a> = dyn FnMut(&str) -> Result<(), Error> + 'a;

impl<'a> ChatGuard<'a> {
    pub(super) fn new(
        chat_id: String,
        keep: bool,
        counts: &'a ChatCounts,
        delete: impl FnMut(&str) -> Result<(), Error> + 'a,
    ) -> Self {
        if !keep {
            counts.to_delete.fetch_add(1, Ordering::Relaxed);
            count_here(0);
        }
        ChatGuard { chat_id, keep, counts, delete: Box::new(delete) }
    }

    pub(super) fn chat_id(&self) -> &str {
        &self.chat_id
    }
}

impl Drop for ChatGuard<'_> {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let _ = delete_counted(self.counts, &self.chat_id, &mut *self.delete);
    }
}

/// Why a chat on Kimi ended before Kimi's answer did: a sink stopped it (a value: tool calls
/// complete the answer, a client that left does not), or it failed.
#[derive(Debug, PartialEq)]
pub enum Halt {
    Stopped(Stop),
    Failed(Error),
}

impl From<Error> for Halt {
    fn from(error: Error) -> Self {
        Halt::Failed(error)
    }
}

impl From<Stop> for Halt {
    fn from(stop: Stop) -> Self {
        Halt::Stopped(stop)
    }
}

/// Remembers whether any content reached the client: once it has, a retry would repeat it.
/// It also marks a kept conversation's id with the account it lives on (see `pool.rs`), since
/// the id the client gets back is the one it will continue with.
pub struct Progress<'a> {
    inner: &'a mut dyn Sink,
    delivered: bool,
    /// The fingerprint appended to conversation ids, when the request keeps its conversation
    /// and the pool has a choice of accounts.
    mark: Option<String>,
}

impl<'a> Progress<'a> {
    pub(super) fn new(inner: &'a mut dyn Sink) -> Self {
        Progress { inner, delivered: false, mark: None }
    }

    pub(super) fn delivered(&self) -> bool {
        self.delivered
    }

    /// Marks the conversation ids sent from now on with this account fingerprint (or not).
    pub(super) fn mark_conversation(&mut self, fingerprint: Option<&str>) {
        self.mark = fingerprint.map(str::to_string);
    }
}

impl Sink for Progress<'_> {
    fn send(&mut self, event: Event) -> Flow {
        let event = match (event, &self.mark) {
            (Event::ConversationId(id), Some(fingerprint)) => {
                Event::ConversationId(super::pool::marked_conversation(&id, fingerprint))
            }
            (event, _) => event,
        };
        if !matches!(event, Event::ConversationId(_) | Event::Heartbeat | Event::ToolsOffered(_)) {
            self.delivered = true;
        }
        self.inner.send(event)
    }

    fn flush(&mut self) -> Flow {
        self.inner.flush()
    }
}
