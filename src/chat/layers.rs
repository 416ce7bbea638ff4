//! The layers every answer passes through between a backend and a dialect, stacked in one
//! place: the request is prepared for them (the JSON it must answer in, the tools it may call),
//! then Kimi's events go through the tool-call reader (calls read out of the text), the JSON
//! unfencer (a streamed JSON answer loses its code fence on the way) and the citations
//! (rendered as text, left out of JSON answers) before the dialect renders them.

use super::output::{self, Output, Unfenced};
use super::tools::{self, ToolCalls, ToolParser};
use super::{CitationText, Request, Sink};

/// What the layers of one answer need to know of its request.
pub struct Layers {
    parser: Option<ToolParser>,
    parallel: bool,
    required: bool,
    silent: bool,
    output: Output,
}

/// The sink a backend writes to: the layers over the dialect's sink.
pub type Stack<S> = ToolCalls<Unfenced<CitationText<S>>>;

impl Layers {
    /// The request as a backend can send it (the JSON instruction, then the tool layer's
    /// rewriting), and the layers its answer goes through.
    pub fn prepare(request: Request, settings: &tools::Settings) -> (Request, Layers) {
        let silent = request.mode.silent || request.output.is_json();
        let output = request.output.clone();
        let required = tools::requires_call(&request);
        let (request, parser) = tools::prepare(output::prepare(request), settings);
        let parallel = request.parallel_tool_calls;
        (request, Layers { parser, parallel, required, silent, output })
    }

    /// The layers over `inner`: a stream (citations lead the answer, JSON is unfenced as it
    /// comes) or a whole answer (citations follow it; JSON is settled once complete).
    pub fn over<S: Sink>(self, inner: S, streaming: bool) -> Stack<S> {
        let output = if streaming { self.output } else { Output::Text };
        let citations = CitationText::new(inner, streaming, self.silent);
        ToolCalls::new(self.parser, self.parallel, self.required, Unfenced::new(&output, citations))
    }
}
