//! How a conversation becomes the single user message Kimi's web protocol takes.
//!
//! Kimi's chat endpoints take one user message per turn. A stateless client sends the whole
//! history each time, so the history is merged into one message as the original project does
//! (`role:text` lines, and a reminder line before the newest message from the second round on).
//! A caller that continues a kept Kimi chat sends only what is new since the last answer.

use crate::chat::{Message, Role};

/// The reminder inserted before the newest message when the history has several messages.
const ATTEND_LATEST: &str = "关注用户最新的消息";
/// The same reminder when the newest message carries a file or an image.
const ATTEND_LATEST_WITH_FILES: &str = "关注用户最新发送文件和消息";

/// The whole history as one prompt. A lone message is its text and a line break; several are
/// `role:text` lines with the reminder line before the last one.
pub fn merge_history(messages: &[Message]) -> String {
    merge(&messages.iter().collect::<Vec<_>>())
}

/// The text of the system messages, for Kimi's own system prompt field
/// (`docs/kimi-protocol.md` §7.3); `None` when there are none, or nothing else to answer.
pub fn system_prompt(messages: &[Message]) -> Option<String> {
    if messages.iter().all(|m| m.role == Role::System) {
        return None;
    }
    let texts: Vec<String> =
        messages.iter().filter(|m| m.role == Role::System).map(Message::joined_text).collect();
    (!texts.is_empty()).then(|| texts.join("\n\n"))
}

/// [`merge_history`] of everything but the system messages (which went to the system prompt).
pub fn merge_conversation(messages: &[Message]) -> String {
    merge(&messages.iter().filter(|m| m.role != Role::System).collect::<Vec<_>>())
}

fn merge(messages: &[&Message]) -> String {
    match messages {
        [] => String::new(),
        [only] => format!("{}\n", message_text(only)),
        [earlier @ .., last] => {
            let mut merged = String::new();
            for message in earlier {
                push_line(&mut merged, message.role.as_str(), &message_text(message));
            }
            let reminder = if last.has_attachments() { ATTEND_LATEST_WITH_FILES } else { ATTEND_LATEST };
            push_line(&mut merged, "system", reminder);
            push_line(&mut merged, last.role.as_str(), &message_text(last));
            merged
        }
    }
}

/// The new turn of a continued chat: the messages after the last assistant answer (Kimi
/// already holds the rest), texts joined by line breaks.
pub fn new_turn(messages: &[Message]) -> String {
    let from = messages.iter().rposition(|m| m.role == Role::Assistant).map_or(0, |i| i + 1);
    let turn =
        if from < messages.len() { &messages[from..] } else { &messages[messages.len().saturating_sub(1)..] };
    let texts: Vec<String> = turn.iter().map(message_text).collect();
    texts.join("\n")
}

fn push_line(merged: &mut String, role: &str, text: &str) {
    merged.push_str(role);
    merged.push(':');
    merged.push_str(text);
    merged.push('\n');
}

/// A message's text, with URLs in user text wrapped the way Kimi's web client does (without
/// the wrapping Kimi does not read the linked page).
fn message_text(message: &Message) -> String {
    let text = message.joined_text();
    if message.role == Role::User { wrap_urls(&text) } else { text }
}

/// Wraps every `http(s)://…` run (up to white space) as
/// `<url id="" type="url" status="" title="" wc="">URL</url>`.
pub fn wrap_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_url_start(rest) {
        out.push_str(&rest[..start]);
        let url_len = rest[start..].find(char::is_whitespace).unwrap_or(rest.len() - start);
        let url = &rest[start..start + url_len];
        out.push_str("<url id=\"\" type=\"url\" status=\"\" title=\"\" wc=\"\">");
        out.push_str(url);
        out.push_str("</url>");
        rest = &rest[start + url_len..];
    }
    out.push_str(rest);
    out
}

fn find_url_start(text: &str) -> Option<usize> {
    let http = text.find("http://");
    let https = text.find("https://");
    match (http, https) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Part;

    #[test]
    fn system_messages_go_to_the_system_prompt_and_leave_the_text() {
        let messages = [
            Message::text(Role::System, "be brief"),
            Message::text(Role::User, "a"),
            Message::text(Role::System, "use metric units"),
            Message::text(Role::Assistant, "b"),
            Message::text(Role::User, "c"),
        ];
        assert_eq!(system_prompt(&messages).as_deref(), Some("be brief\n\nuse metric units"));
        assert_eq!(merge_conversation(&messages), "user:a\nassistant:b\nsystem:关注用户最新的消息\nuser:c\n");
        let plain = [Message::text(Role::User, "hi")];
        assert_eq!((system_prompt(&plain), merge_conversation(&plain)), (None, "hi\n".to_string()));
        // Only a system message: it is the text to answer, not a system prompt.
        let only = [Message::text(Role::System, "say hi")];
        assert_eq!(system_prompt(&only), None);
    }

    #[test]
    fn lone_message_is_its_text() {
        assert_eq!(merge_history(&[Message::text(Role::User, "hi")]), "hi\n");
    }

    #[test]
    fn history_keeps_system_prompt_and_adds_reminder() {
        let messages = [
            Message::text(Role::System, "be brief"),
            Message::text(Role::User, "hello"),
            Message::text(Role::Assistant, "hi!"),
            Message::text(Role::User, "weather?"),
        ];
        assert_eq!(
            merge_history(&messages),
            "system:be brief\nuser:hello\nassistant:hi!\nsystem:关注用户最新的消息\nuser:weather?\n"
        );
    }

    #[test]
    fn reminder_mentions_files_when_the_last_message_has_one() {
        let last = Message {
            role: Role::User,
            parts: vec![Part::Text("what is this".into()), Part::Image("x".into())],
        };
        let merged = merge_history(&[Message::text(Role::User, "a"), last]);
        assert!(merged.contains("system:关注用户最新发送文件和消息\nuser:what is this\n"), "{merged}");
    }

    #[test]
    fn urls_in_user_text_are_wrapped() {
        assert_eq!(
            wrap_urls("read https://a.b/c?d=1 and http://x.y"),
            "read <url id=\"\" type=\"url\" status=\"\" title=\"\" wc=\"\">https://a.b/c?d=1</url> and \
             <url id=\"\" type=\"url\" status=\"\" title=\"\" wc=\"\">http://x.y</url>"
        );
        let merged =
            merge_history(&[Message::text(Role::Assistant, "see http://q"), Message::text(Role::User, "ok")]);
        assert!(merged.contains("assistant:see http://q\n"));
    }

    #[test]
    fn continued_chat_sends_only_the_new_turn() {
        let messages = [
            Message::text(Role::User, "first"),
            Message::text(Role::Assistant, "answer"),
            Message::text(Role::User, "second"),
            Message::text(Role::User, "third"),
        ];
        assert_eq!(new_turn(&messages), "second\nthird");
        assert_eq!(new_turn(&messages[..1]), "first");
    }
}
