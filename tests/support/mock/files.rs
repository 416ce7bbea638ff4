//! Attachments off the chat APIs: the object storage the legacy pre-signed URLs point at
//! (`/_oss/`), a web host for URL attachments (`/_files/`), and Connect's file service (upload
//! and parse progress, `docs/kimi-protocol.md` §7.10).

use std::io::Write;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::auth::connect_identity;
use super::http::{Flow, Request, connect_error, json_response, request_header};
use super::script::{Fault, Upload};
use super::state::State;

/// `PUT /_oss/{object}`: stores an attachment, noting whether a Kimi credential came with it.
pub(super) fn store(state: &Mutex<State>, request: Request, object: &str) -> Flow {
    let upload = Upload {
        name: object.to_string(),
        mime: request_header(&request, "Content-Type").unwrap_or_default(),
        size: request.body.len(),
        saw_credential: request_header(&request, "Authorization").is_some()
            || request_header(&request, "X-Traffic-Id").is_some(),
    };
    state.lock().unwrap().stats.uploads.push(upload);
    json_response(request, 200, json!({}))
}

/// `GET /_files/{name}`: a PNG for `*.png`, else a text document.
pub(super) fn download(mut request: Request, name: &str) -> Flow {
    let (mime, bytes): (&str, &[u8]) = if name.ends_with(".png") {
        ("image/png", b"\x89PNG\r\n\x1a\nmock image")
    } else {
        ("text/plain", b"a mock document")
    };
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: {mime}\r\nContent-Length: {}\r\n\r\n", bytes.len());
    let written = request.stream.write_all(head.as_bytes()).and_then(|()| request.stream.write_all(bytes));
    if written.is_ok() { Flow::KeepAlive } else { Flow::Close }
}

/// `POST /apiv2-files/file/upload`: a multipart upload, stored under its file name and type.
pub(super) fn upload(state: &Mutex<State>, request: Request) -> Flow {
    if connect_identity(state, &request).is_err() {
        return connect_error(request, 401, "unauthenticated");
    }
    let text = String::from_utf8_lossy(&request.body).to_string();
    let field = |key: &str| {
        text.split(key).nth(1).and_then(|rest| rest.split(['"', '\r']).next()).unwrap_or_default().to_string()
    };
    let upload = Upload {
        name: field("filename=\""),
        mime: field("Content-Type: "),
        size: request.body.len(),
        saw_credential: false,
    };
    let mut st = state.lock().unwrap();
    st.stats.uploads.push(upload);
    st.next_id += 1;
    let id = format!("cf-{}", st.next_id);
    drop(st);
    json_response(request, 200, json!({"file": {"id": id, "parseResult": {}}}))
}

/// `FileService/GetFileParseProgress`: the first poll of a file finds it still processing, later
/// ones done or the script's status (`docs/kimi-protocol.md` §7.10); `ParseSaysNothing` answers
/// a page that is not JSON.
pub(super) fn parse_progress(state: &Mutex<State>, mut request: Request, body: Value) -> Flow {
    let id = body["file_ids"][0].as_str().unwrap_or_default().to_string();
    let mut st = state.lock().unwrap();
    let first = st.chats.insert(format!("poll-{id}"), 0).is_none();
    let silent = st.script.fault == Some(Fault::ParseSaysNothing);
    let fails = st.script.fault == Some(Fault::ParseFails);
    let later = st.script.upload_status.clone().unwrap_or_else(|| "PROCESS_STATUS_SUCCESS".into());
    drop(st);
    if silent {
        let page = "<html>gateway</html>";
        let head =
            format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n", page.len());
        let _ = request.stream.write_all(format!("{head}{page}").as_bytes());
        return Flow::KeepAlive;
    }
    let status = match (first, fails) {
        (true, _) => "PROCESS_STATUS_PROCESSING",
        (false, true) => "PROCESS_STATUS_FAIL",
        (false, false) => later.as_str(),
    };
    json_response(request, 200, json!({"progresses": [{"fileId": id, "status": status}]}))
}
