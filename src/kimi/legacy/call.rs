//! How an authenticated call to the legacy API is made: the web client's headers, JSON posts,
//! and SSE responses read as bytes arrive (`docs/kimi-protocol.md` §3.2).

use std::sync::OnceLock;

use serde_json::Value;
use ureq::RequestBuilder;
use ureq::typestate::WithBody;

use super::Context;
use super::sse::SseDecoder;
use crate::kimi::http;
use crate::kimi::session::Session;
use crate::kimi::{Error, accounts};

/// Size of each read from an upstream stream.
const READ_CHUNK: usize = 4 * 1024;

/// Device and session ids, chosen once per process like a browser's.
fn client_ids() -> &'static (String, String) {
    static IDS: OnceLock<(String, String)> = OnceLock::new();
    IDS.get_or_init(|| (accounts::random_digits('7', 19), accounts::random_digits('1', 19)))
}

/// The headers of Kimi's web client on an authenticated call.
pub(super) fn signed<B>(
    builder: RequestBuilder<B>,
    ctx: Context<'_>,
    session: &Session,
    chat_id: Option<&str>,
) -> RequestBuilder<B> {
    let (device_id, session_id) = client_ids();
    let referer = match chat_id {
        Some(id) => format!("{}/chat/{id}", ctx.base),
        None => format!("{}/", ctx.base),
    };
    builder
        .header("Authorization", format!("Bearer {}", session.access_token))
        .header("X-Traffic-Id", session.user_id.as_str())
        .header("X-Msh-Platform", "web")
        .header("X-Msh-Device-Id", device_id.as_str())
        .header("X-Msh-Session-Id", session_id.as_str())
        .header("R-Timezone", "Asia/Shanghai")
        .header("Origin", ctx.base)
        .header("Referer", referer)
}

pub(super) fn post_json(
    ctx: Context<'_>,
    session: &Session,
    chat_id: Option<&str>,
    path: &str,
    body: &Value,
) -> Result<ureq::http::Response<ureq::Body>, Error> {
    let builder: RequestBuilder<WithBody> = ctx.upstream.post(format!("{}{path}", ctx.base));
    signed(builder, ctx, session, chat_id)
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .map_err(|e| ctx.upstream.failed(e))
}

/// An SSE response from Kimi, read as bytes arrive.
pub(super) struct EventReader {
    reader: ureq::BodyReader<'static>,
    decoder: SseDecoder,
}

impl EventReader {
    /// POSTs `body` to `path` and checks that Kimi answered with a stream.
    pub(super) fn open(
        ctx: Context<'_>,
        session: &Session,
        chat_id: &str,
        path: &str,
        body: &Value,
    ) -> Result<Self, Error> {
        let response = post_json(ctx, session, Some(chat_id), path, body)?;
        if response.status().as_u16() != 200 {
            return Err(http::error_of(response));
        }
        Ok(EventReader { reader: response.into_body().into_reader(), decoder: SseDecoder::new() })
    }

    /// The complete events one read delivered (possibly none), or `None` when the stream ended
    /// (with the data of an event it ended in the middle of, if any, left for [`Self::rest`]).
    pub(super) fn next_batch(&mut self) -> Result<Option<Vec<String>>, Error> {
        let n = self.decoder.read_from(&mut self.reader, READ_CHUNK).map_err(|e| http::from_io(&e))?;
        if n == 0 {
            return Ok(None);
        }
        let mut batch = Vec::new();
        while let Some(data) = self.decoder.next_event().map_err(|e| Error::Upstream(e.to_string()))? {
            batch.push(data);
        }
        Ok(Some(batch))
    }

    /// An event the stream ended in the middle of.
    pub(super) fn rest(&mut self) -> Option<String> {
        self.decoder.finish()
    }
}
