//! Where a backend pushes events as soon as it has decoded them, and what the sinks answer:
//! go on, or stop — because the answer ended with tool calls for the client, or because the
//! client went away. A stop is a value the backend acts on, not an error: a tool-call answer is
//! a success, and only a client that left is not one.

use super::Event;

/// What a sink says after taking an event: go on, or stop reading Kimi.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Flow {
    Go,
    Stop(Stop),
}

/// Why a sink wants no more events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The answer ended with tool calls for the client to run; the rest of Kimi's text (the
    /// model inventing their results) is not wanted. The answer is complete.
    ToolCalls,
    /// The client went away; the backend stops reading and cleans up.
    ClientGone,
    /// The request requires a tool call and the answer made none: the backend asks once more
    /// in the same chat ([`crate::chat::tools::corrective`]) and goes on pushing that answer
    /// to the same sink, which then takes it as it comes.
    CallMissing,
}

impl Flow {
    /// `Err(stop)` when a sink stopped: for `?` in a backend whose error type takes a [`Stop`].
    pub fn go(self) -> Result<(), Stop> {
        match self {
            Flow::Go => Ok(()),
            Flow::Stop(stop) => Err(stop),
        }
    }

    /// Runs `next` only if this flow goes on (a sink that sends several events in a row).
    pub fn then(self, next: impl FnOnce() -> Flow) -> Flow {
        match self {
            Flow::Go => next(),
            stop => stop,
        }
    }
}

impl From<Result<(), Stop>> for Flow {
    fn from(result: Result<(), Stop>) -> Flow {
        match result {
            Ok(()) => Flow::Go,
            Err(stop) => Flow::Stop(stop),
        }
    }
}

/// How an answer that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Kimi's answer came to its end.
    Complete,
    /// A sink stopped it (see [`Stop`]).
    Stopped(Stop),
}

impl Ended {
    /// Whether the answer is a success for the account that served it (the client may have left
    /// before the end; that says nothing of the account).
    pub fn answered(self) -> bool {
        self != Ended::Stopped(Stop::ClientGone)
    }
}

/// Where a backend pushes events as soon as it has decoded them.
///
/// A backend calls [`Sink::flush`] each time it has handled everything one read from Kimi
/// delivered, before it reads again: a stream sink writes to the client then, so events that
/// arrived together leave together (one write, not one per event) and none waits for the next
/// read.
pub trait Sink {
    fn send(&mut self, event: Event) -> Flow;

    fn flush(&mut self) -> Flow {
        Flow::Go
    }
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn send(&mut self, event: Event) -> Flow {
        (**self).send(event)
    }

    fn flush(&mut self) -> Flow {
        (**self).flush()
    }
}

/// A sink that keeps every event, for tests.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Collect(pub Vec<Event>);

#[cfg(test)]
impl Sink for Collect {
    fn send(&mut self, event: Event) -> Flow {
        self.0.push(event);
        Flow::Go
    }
}
