//! The layers every answer passes through between a backend and a dialect, stacked in one
//! place: the request is prepared for them (tools described to the model), then Kimi's events
//! go through the tool-call reader (calls read out of the text) and the citations (rendered as
//! text) before the dialect renders them.

use super::tools::{self, ToolCalls, ToolParser};
use super::{CitationText, Request, Sink};

/// What the layers of one answer need to know of its request.
pub struct Layers {
    parser: Option<ToolParser>,
    parallel: bool,
    silent: bool,
}

/// The sink a backend writes to: the layers over the dialect's sink.
pub type Stack<S> = ToolCalls<CitationText<S>>;

impl Layers {
    /// The request as a backend can send it, and the layers its answer goes through.
    pub fn prepare(request: Request, settings: &tools::Settings) -> (Request, Layers) {
        let silent = request.mode.silent;
        let (request, parser) = tools::prepare(request, settings);
        let parallel = request.parallel_tool_calls;
        (request, Layers { parser, parallel, silent })
    }

    /// The layers over `inner`, a stream (citations lead the answer) or a whole answer
    /// (citations follow it).
    pub fn over<S: Sink>(self, inner: S, streaming: bool) -> Stack<S> {
        ToolCalls::new(self.parser, self.parallel, CitationText::new(inner, streaming, self.silent))
    }
}
