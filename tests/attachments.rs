//! Images and documents through every dialect and both backends: decoded from data URLs or
//! fetched from URLs (public ones only, unless allowed), uploaded to Kimi and referenced in the
//! turn, without leaking a credential to the storage host.

#[macro_use]
mod support;

use serde_json::{Value, json};
use support::{Api, Harness, Kind, post_json, post_with};

both_backends!(
    openai_image_data_url_is_uploaded_and_referenced,
    anthropic_image_and_gemini_document,
    urls_are_fetched_only_when_allowed,
    a_bad_attachment_is_400_before_any_chat,
);

const PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==";

/// The file ids the last turn referenced, whichever protocol carried it.
fn referenced_files(kind: Kind, sent: &Value) -> Vec<String> {
    let ids: Vec<&Value> = match kind.api() {
        Api::Legacy => sent["refs"].as_array().unwrap().iter().collect(),
        Api::Connect => sent["message"]["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b.get("file"))
            .map(|f| &f["id"])
            .collect(),
    };
    ids.iter().map(|id| id.as_str().unwrap().to_string()).collect()
}

fn openai_image_data_url_is_uploaded_and_referenced(kind: Kind) {
    let h = Harness::start();
    let body = json!({"model": "kimi", "messages": [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}"), "detail": "auto"}}]}]});
    let reply = post_json(&h.url("/v1/chat/completions"), Some(&kind.token()), &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let stats = h.mock.settled();
    assert_eq!(stats.uploads.len(), 1);
    let upload = &stats.uploads[0];
    assert!(upload.name.contains("upload.png"), "{upload:?}");
    assert!(!upload.saw_credential, "no Kimi credential goes to the storage host");
    if kind.api() == Api::Legacy {
        assert_eq!(upload.mime, "image/png");
        assert_eq!(upload.size, 70, "the decoded image");
    }
    let sent = stats.last_completion.unwrap();
    assert_eq!(referenced_files(kind, &sent).len(), 1);
    if kind.api() == Api::Legacy {
        assert_eq!(sent["refs_file"][0]["id"], sent["refs"][0]);
        assert_eq!(sent["refs_file"][0]["upload_status"], "success");
    }
    assert!(stats.last_prompt.unwrap().contains("system:关注用户最新发送文件和消息\nuser:what is this?\n"));
    assert!(stats.live_chats.is_empty());
}

fn anthropic_image_and_gemini_document(kind: Kind) {
    let h = Harness::start();
    let token = kind.token();
    let body = json!({"model": "claude-opus-5-5", "max_tokens": 100, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "describe"}]}]});
    let reply = post_with(&h.url("/v1/messages"), &[("x-api-key", &token)], &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(referenced_files(kind, &h.mock.stats().last_completion.unwrap()).len(), 1);

    let document = base64_of("chapter one: it was a dark night");
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "summarise"},
        {"inline_data": {"mime_type": "text/plain", "data": document}}]}]});
    let reply =
        post_with(&h.url("/v1beta/models/kimi:generateContent"), &[("x-goog-api-key", &token)], &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let stats = h.mock.settled();
    assert_eq!(stats.uploads.len(), 2);
    assert!(stats.uploads[1].name.contains("upload.txt"), "{:?}", stats.uploads[1]);
    assert_eq!(referenced_files(kind, &stats.last_completion.unwrap()).len(), 1);
    assert!(stats.live_chats.is_empty());
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn urls_are_fetched_only_when_allowed(kind: Kind) {
    let h = Harness::start();
    let image_url = format!("{}/_files/cat.png", h.mock.url());
    let body = json!({"model": "kimi", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": image_url}}]}]});
    let reply = post_json(&h.url("/v1/chat/completions"), Some(&kind.token()), &body);
    assert_eq!(reply.status, 400, "a loopback URL is refused by default: {}", reply.body);
    assert!(reply.json()["error"]["message"].as_str().unwrap().contains("private or local"));
    assert_eq!(h.mock.stats().chats_created, 0);

    let h = Harness::start_with(|c| c.allow_private_urls = true);
    let image_url = format!("{}/_files/cat.png", h.mock.url());
    let body = json!({"model": "kimi", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": image_url}}]}]});
    let reply = post_json(&h.url("/v1/chat/completions"), Some(&kind.token()), &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let stats = h.mock.settled();
    assert_eq!(stats.uploads.len(), 1);
    assert!(stats.uploads[0].name.contains("cat.png"), "{:?}", stats.uploads[0]);
}

fn a_bad_attachment_is_400_before_any_chat(kind: Kind) {
    let h = Harness::start();
    for url in ["data:image/png;base64,@@@", "ftp://example.com/a.png", "data:image/png;base64,"] {
        let body = json!({"model": "kimi", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]}]});
        let reply = post_json(&h.url("/v1/chat/completions"), Some(&kind.token()), &body);
        assert_eq!(reply.status, 400, "{url}: {}", reply.body);
    }
    assert_eq!(h.mock.stats().chats_created, 0);
}

#[test]
fn a_document_kimi_cannot_read_is_a_400_naming_it() {
    let h = Harness::start();
    h.mock.script(support::Script { fault: Some(support::Fault::ParseFails), ..support::Script::default() });
    let document = format!("data:application/pdf;name=report.pdf;base64,{}", base64_of("a report"));
    let body = json!({"model": "kimi", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "summarise"}, {"type": "file", "file": {"file_data": document}}]}]});
    let reply = post_json(&h.url("/v1/chat/completions"), Some(&Kind::Connect.token()), &body);
    assert_eq!(reply.status, 400, "{}", reply.body);
    let message = reply.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("Kimi could not read the attachment \"report.pdf\""), "{message}");
    assert!(h.mock.settled().live_chats.is_empty());
}
