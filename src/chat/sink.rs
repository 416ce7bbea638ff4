//! Where a backend pushes events as soon as it has decoded them, and how a sink says the
//! client went away.

use super::Event;

/// The client went away; the backend stops reading and cleans up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnected;

/// Where a backend pushes events as soon as it has decoded them.
///
/// A backend calls [`Sink::flush`] each time it has handled everything one read from Kimi
/// delivered, before it reads again: a stream sink writes to the client then, so events that
/// arrived together leave together (one write, not one per event) and none waits for the next
/// read.
pub trait Sink {
    fn send(&mut self, event: Event) -> Result<(), Disconnected>;

    fn flush(&mut self) -> Result<(), Disconnected> {
        Ok(())
    }
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn send(&mut self, event: Event) -> Result<(), Disconnected> {
        (**self).send(event)
    }

    fn flush(&mut self) -> Result<(), Disconnected> {
        (**self).flush()
    }
}
