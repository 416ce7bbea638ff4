//! Attachments on the Connect API (`docs/kimi-protocol.md` §4.8, §7.10).

use serde_json::{Value, json};
use ureq::RequestBuilder;
use ureq::typestate::WithBody;

use super::Context;
use super::call::{signed, unary};
use crate::kimi::attachment::Attachment;
use crate::kimi::token::ConnectIdentity;
use crate::kimi::{Error, accounts, drift, http};

/// How long a document may take to be parsed, in polls of [`PARSE_POLL`].
const PARSE_POLLS: u32 = 120;
const PARSE_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Uploads one attachment (`docs/kimi-protocol.md` §4.8): a multipart POST, then polls until Kimi has parsed it.
pub(super) fn upload(
    ctx: Context<'_>,
    token: &str,
    who: &ConnectIdentity,
    attachment: &Attachment,
) -> Result<String, Error> {
    let boundary = format!("kimi-free-api-{}", accounts::random_digits('1', 24));
    let name = attachment.name.replace(['"', '\r', '\n'], "_");
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {}\r\n\r\n",
        attachment.mime
    )
    .into_bytes();
    body.extend_from_slice(&attachment.bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let builder: RequestBuilder<WithBody> =
        ctx.upstream.post(format!("{}/apiv2-files/file/upload", ctx.base));
    let response = signed(builder, ctx, token, who)
        .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
        .send(&body[..])
        .map_err(|e| ctx.upstream.failed(e))?;
    let status = response.status().as_u16();
    let answer = http::read_small(response)?;
    if status != 200 {
        return Err(http::error_from_body(status, &answer));
    }
    let answer: Value = serde_json::from_slice(&answer).unwrap_or_default();
    let Some(id) = answer["file"]["id"].as_str().filter(|id| !id.is_empty()).map(str::to_string) else {
        return Err(Error::Upstream("Kimi stored the attachment without an id".into()));
    };
    wait_for_parse(ctx, token, who, id, &name)
}

/// Polls `GetFileParseProgress` until Kimi has parsed the file `id` (`docs/kimi-protocol.md` §7.10).
fn wait_for_parse(
    ctx: Context<'_>,
    token: &str,
    who: &ConnectIdentity,
    id: String,
    name: &str,
) -> Result<String, Error> {
    let method = "apiv2-files/kimi.gateway.file.v1.FileService/GetFileParseProgress";
    for _ in 0..PARSE_POLLS {
        let progress = unary(ctx, token, who, method, &json!({"file_ids": [id]}))?;
        let status = progress["progresses"][0]["status"].as_str();
        match parse_state(status) {
            Parse::Done => return Ok(id),
            Parse::Failed => {
                return Err(Error::Rejected(format!("Kimi could not read the attachment \"{name}\"")));
            }
            Parse::Unknown => drift::note("status", status.unwrap_or_default()),
            Parse::Wait => {}
        }
        std::thread::sleep(PARSE_POLL);
    }
    Err(Error::Timeout)
}

/// What a file's parse status says (`docs/kimi-protocol.md` §7.10).
#[derive(Debug, PartialEq)]
enum Parse {
    Wait,
    Done,
    Failed,
    /// A status this server does not know: counted, and waited on.
    Unknown,
}

/// `PROCESS_STATUS_PROCESSING` (the browser's, 2026-09) and `PROCESS_STATUS_PARSING` (older)
/// mean wait; the failure is named `PROCESS_STATUS_FAIL` by one source and `_FAILED` by another
/// (`docs/kimi-protocol.md` §7.10), so both fail. No status yet: wait.
fn parse_state(status: Option<&str>) -> Parse {
    match status {
        None | Some("PROCESS_STATUS_PROCESSING" | "PROCESS_STATUS_PARSING") => Parse::Wait,
        Some("PROCESS_STATUS_SUCCESS") => Parse::Done,
        Some("PROCESS_STATUS_FAIL" | "PROCESS_STATUS_FAILED") => Parse::Failed,
        Some(_) => Parse::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_statuses_old_and_new_and_unknown() {
        assert_eq!(parse_state(Some("PROCESS_STATUS_PROCESSING")), Parse::Wait);
        assert_eq!(parse_state(Some("PROCESS_STATUS_PARSING")), Parse::Wait);
        assert_eq!(parse_state(None), Parse::Wait);
        assert_eq!(parse_state(Some("PROCESS_STATUS_SUCCESS")), Parse::Done);
        assert_eq!(parse_state(Some("PROCESS_STATUS_FAIL")), Parse::Failed);
        assert_eq!(parse_state(Some("PROCESS_STATUS_FAILED")), Parse::Failed);
        assert_eq!(parse_state(Some("PROCESS_STATUS_QUEUED")), Parse::Unknown);
        assert_eq!(parse_state(Some("")), Parse::Unknown);
    }
}
