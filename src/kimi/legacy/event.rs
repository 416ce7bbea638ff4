//! The events of the legacy completion stream (`docs/kimi-protocol.md` §3.5), parsed from one SSE
//! event's data. Pure: JSON text in, [`LegacyEvent`] out.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq)]
pub enum LegacyEvent {
    /// Echo of the user's segment; its id is what `action: continue` needs.
    Request { segment_id: String },
    /// A piece of the answer.
    Text(String),
    /// A piece of K1 reasoning.
    Thinking(String),
    /// One web search result.
    SearchResult { title: String, url: String },
    /// The answer hit Kimi's length limit; it can be continued.
    Length,
    /// The terminal event.
    AllDone,
    /// A terminal error.
    Error { error_type: String, message: String },
    /// Anything else (`resp`, `debug`, `rename`, `done` mid-stream, ...): nothing to do.
    Ignored,
}

#[derive(Deserialize)]
struct Raw {
    event: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    msg: Option<SearchMsg>,
    #[serde(default)]
    error: Option<RawError>,
}

#[derive(Deserialize)]
struct SearchMsg {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    url: String,
}

#[derive(Deserialize, Default)]
struct RawError {
    #[serde(default)]
    error_type: String,
    #[serde(default)]
    message: String,
}

/// Parses one event's data. `Err` means the data is not a Kimi event at all.
pub fn parse(data: &str) -> Result<LegacyEvent, serde_json::Error> {
    let raw: Raw = serde_json::from_str(data)?;
    Ok(match raw.event.as_str() {
        "req" => match raw.id {
            Some(segment_id) => LegacyEvent::Request { segment_id },
            None => LegacyEvent::Ignored,
        },
        "cmpl" => LegacyEvent::Text(raw.text.unwrap_or_default()),
        "k1" => LegacyEvent::Thinking(raw.text.unwrap_or_default()),
        "search_plus" => match raw.msg {
            Some(msg) if msg.kind == "get_res" && !msg.url.is_empty() => {
                LegacyEvent::SearchResult { title: msg.title, url: msg.url }
            }
            _ => LegacyEvent::Ignored,
        },
        "length" => LegacyEvent::Length,
        "all_done" => LegacyEvent::AllDone,
        "error" => {
            let error = raw.error.unwrap_or_default();
            LegacyEvent::Error { error_type: error.error_type, message: error.message }
        }
        _ => LegacyEvent::Ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_catalogue() {
        let cases = [
            (
                r#"{"content":"1+1","event":"req","group_id":"g","id":"seg1","refs":[]}"#,
                LegacyEvent::Request { segment_id: "seg1".into() },
            ),
            (r#"{"event":"cmpl","text":"你好"}"#, LegacyEvent::Text("你好".into())),
            (r#"{"event":"k1","text":"thinking"}"#, LegacyEvent::Thinking("thinking".into())),
            (
                r#"{"event":"search_plus","msg":{"successNum":1,"title":"T","type":"get_res","url":"http://u"}}"#,
                LegacyEvent::SearchResult { title: "T".into(), url: "http://u".into() },
            ),
            (r#"{"event":"search_plus","msg":{"type":"start"}}"#, LegacyEvent::Ignored),
            (r#"{"event":"length"}"#, LegacyEvent::Length),
            (r#"{"event":"done"}"#, LegacyEvent::Ignored),
            (r#"{"event":"all_done"}"#, LegacyEvent::AllDone),
            (r#"{"event":"resp","id":"x"}"#, LegacyEvent::Ignored),
            (
                r#"{"event":"error","error":{"error_type":"openai.completion.stream","message":"tired"}}"#,
                LegacyEvent::Error { error_type: "openai.completion.stream".into(), message: "tired".into() },
            ),
        ];
        for (data, expected) in cases {
            assert_eq!(parse(data).unwrap(), expected, "{data}");
        }
    }

    #[test]
    fn a_search_result_needs_both_its_type_and_an_address() {
        let no_url = r#"{"event":"search_plus","msg":{"type":"get_res","title":"T","url":""}}"#;
        assert_eq!(parse(no_url).unwrap(), LegacyEvent::Ignored);
        let not_a_result = r#"{"event":"search_plus","msg":{"type":"start","title":"T","url":"http://u"}}"#;
        assert_eq!(parse(not_a_result).unwrap(), LegacyEvent::Ignored);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse("not json").is_err());
        assert!(parse(r#"{"no_event":1}"#).is_err());
    }
}
