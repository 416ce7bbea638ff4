//! Attachments on the legacy API (`docs/kimi-protocol.md` §3.8).

use serde::Deserialize;
use serde_json::{Value, json};

use super::Context;
use super::call::{EventReader, post_json};
use crate::kimi::attachment::Attachment;
use crate::kimi::session::Session;
use crate::kimi::{Error, http};

/// Uploads one attachment (`docs/kimi-protocol.md` §3.8): a pre-signed URL, the bytes PUT there (with no Kimi
/// credential: the storage host is a third party), the file registered, and for documents
/// the parse awaited. Returns Kimi's file object.
pub(super) fn upload(
    ctx: Context<'_>,
    session: &Session,
    chat_id: &str,
    attachment: &Attachment,
) -> Result<Value, Error> {
    #[derive(Deserialize)]
    struct Signed {
        url: String,
        #[serde(default)]
        object_name: String,
        #[serde(default)]
        file_id: String,
    }
    let action = if attachment.is_image() { "image" } else { "file" };
    let request = json!({"action": action, "name": attachment.name, "size": attachment.bytes.len()});
    let signed: Signed =
        http::read_json(post_json(ctx, session, Some(chat_id), "/api/pre-sign-url", &request)?)?;
    let response = ctx
        .upstream
        .put(&signed.url)
        .header("Content-Type", attachment.mime.as_str())
        .send(&attachment.bytes[..])
        .map_err(|e| ctx.upstream.failed(e))?;
    if !response.status().is_success() {
        return Err(Error::Upstream(format!(
            "storing the attachment answered HTTP {}",
            response.status().as_u16()
        )));
    }
    let register = if attachment.is_image() {
        json!({"type": "image", "file_id": signed.file_id, "name": attachment.name})
    } else {
        json!({"type": "file", "name": attachment.name, "object_name": signed.object_name, "file_id": "", "chat_id": chat_id})
    };
    let file: Value = http::read_json(post_json(ctx, session, Some(chat_id), "/api/file", &register)?)?;
    let Some(id) = file["id"].as_str().filter(|id| !id.is_empty()).map(str::to_string) else {
        return Err(Error::Upstream("Kimi registered the attachment without an id".into()));
    };
    if !attachment.is_image() {
        await_parse(ctx, session, chat_id, &id)?;
    }
    Ok(file)
}

/// Reads the parse-progress stream of a document until Kimi says it is parsed (or failed).
fn await_parse(ctx: Context<'_>, session: &Session, chat_id: &str, file_id: &str) -> Result<(), Error> {
    let body = json!({"ids": [file_id], "timeout": 120_000});
    let mut events = EventReader::open(ctx, session, chat_id, "/api/file/parse_process", &body)?;
    while let Some(batch) = events.next_batch()? {
        for data in batch {
            let event: Value = serde_json::from_str(&data).unwrap_or_default();
            let status = event["file_info"]["status"].as_str().or_else(|| event["status"].as_str());
            match status {
                Some("parsed") => return Ok(()),
                Some("failed") => {
                    return Err(Error::Rejected("Kimi could not read the attached document".into()));
                }
                _ => {}
            }
        }
    }
    // A stream that ends before either status leaves the document unread: the answer would be
    // made without it.
    Err(Error::Upstream("Kimi's parse progress of the attached document ended without a result".into()))
}
