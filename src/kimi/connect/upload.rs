//! Attachments on the Connect API (`docs/kimi-protocol.md` §4.8).

use serde_json::{Value, json};
use ureq::RequestBuilder;
use ureq::typestate::WithBody;

use super::Context;
use super::call::{signed, unary};
use crate::kimi::attachment::Attachment;
use crate::kimi::token::ConnectIdentity;
use crate::kimi::{Error, accounts, http};

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
        ctx.upstream.agent().post(format!("{}/apiv2-files/file/upload", ctx.base));
    let response = signed(builder, ctx, token, who)
        .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
        .send(&body[..])
        .map_err(http::from_ureq)?;
    let status = response.status().as_u16();
    let answer = http::read_small(response)?;
    if status != 200 {
        return Err(http::error_from_body(status, &answer));
    }
    let answer: Value = serde_json::from_slice(&answer).unwrap_or_default();
    let Some(id) = answer["file"]["id"].as_str().filter(|id| !id.is_empty()).map(str::to_string) else {
        return Err(Error::Upstream("Kimi stored the attachment without an id".into()));
    };
    let method = "apiv2-files/kimi.gateway.file.v1.FileService/GetFileParseProgress";
    for _ in 0..PARSE_POLLS {
        let progress = unary(ctx, token, who, method, &json!({"file_ids": [id]}))?;
        match progress["progresses"][0]["status"].as_str() {
            Some("PROCESS_STATUS_SUCCESS") => return Ok(id),
            Some("PROCESS_STATUS_FAILED") => {
                return Err(Error::Rejected("Kimi could not read the attachment".into()));
            }
            _ => std::thread::sleep(PARSE_POLL),
        }
    }
    Err(Error::Timeout)
}
