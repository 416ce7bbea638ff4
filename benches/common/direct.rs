//! The direct side of the proxy bench: the least upstream work a proxy must do, done against the
//! mock Kimi by the bench itself (legacy: create a chat and read its completion stream; Connect:
//! one `Chat` call), each chat deleted afterwards outside the timing.

use std::io::Read;
use std::time::Instant;

use kimi_free_api::kimi::envelope;
use kimi_free_api::kimi::sse::SseDecoder;
use serde::Deserialize;
use serde_json::{Value, json};

use super::stream::{Backend, LEGACY_TOKEN, Run, agent, connect_token};

/// The fields a client reads from a legacy event (typed: the bench should cost the client as
/// little on one side as on the other).
#[derive(Deserialize)]
struct LegacyEvent<'a> {
    #[serde(borrow)]
    event: &'a str,
    #[serde(default)]
    text: Option<String>,
}

/// The direct side: the upstream work a proxy must do, against the mock.
pub struct Direct {
    base: String,
    access: String,
    agent: ureq::Agent,
}

impl Direct {
    pub fn new(base: &str) -> Direct {
        let agent = agent();
        let mut tokens = agent
            .get(format!("{base}/api/auth/token/refresh"))
            .header("Authorization", format!("Bearer {LEGACY_TOKEN}"))
            .call()
            .unwrap();
        let tokens: Value = serde_json::from_str(&tokens.body_mut().read_to_string().unwrap()).unwrap();
        Direct { base: base.to_string(), access: tokens["access_token"].as_str().unwrap().to_string(), agent }
    }

    pub fn user_id(&self) -> String {
        let mut user = self
            .agent
            .get(format!("{}/api/user", self.base))
            .header("Authorization", format!("Bearer {}", self.access))
            .call()
            .unwrap();
        let user: Value = serde_json::from_str(&user.body_mut().read_to_string().unwrap()).unwrap();
        user["id"].as_str().unwrap().to_string()
    }

    pub fn stream(&self, backend: Backend, user: &str) -> Run {
        let started = Instant::now();
        let mut run = Run::default();
        let result = match backend {
            Backend::Legacy => self.legacy(started, user, &mut run),
            Backend::Connect => self.connect(started, &mut run),
        };
        match result {
            Ok(chat_id) => {
                run.ok = true;
                self.delete(backend, &chat_id);
            }
            Err(why) => run.failure = Some(why),
        }
        run
    }

    fn legacy(&self, started: Instant, user: &str, run: &mut Run) -> Result<String, String> {
        let auth = format!("Bearer {}", self.access);
        let mut created = self
            .agent
            .post(format!("{}/api/chat", self.base))
            .header("Authorization", &auth)
            .header("X-Traffic-Id", user)
            .header("Content-Type", "application/json")
            .send(json!({"name": "bench", "kimiplus_id": "kimi"}).to_string().as_bytes())
            .map_err(|e| e.to_string())?;
        let created: Value =
            serde_json::from_str(&created.body_mut().read_to_string().map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let chat_id = created["id"].as_str().ok_or("no chat id")?.to_string();
        let body = json!({"kimiplus_id": "kimi", "messages": [{"role": "user", "content": "bench\n"}], "refs": [],
            "use_search": false, "extend": {"sidebar": true}});
        let response = self
            .agent
            .post(format!("{}/api/chat/{chat_id}/completion/stream", self.base))
            .header("Authorization", &auth)
            .header("X-Traffic-Id", user)
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
        let mut reader = response.into_body().into_reader();
        let mut decoder = SseDecoder::new();
        let mut buf = vec![0; 8192];
        loop {
            let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("stream ended early".into());
            }
            decoder.push(&buf[..n]);
            while let Some(data) = decoder.next_event().map_err(|e| e.to_string())? {
                let event: LegacyEvent = serde_json::from_str(&data).map_err(|e| e.to_string())?;
                match event.event {
                    "cmpl" => run.piece(started, event.text.as_deref().unwrap_or_default()),
                    "all_done" => return Ok(chat_id),
                    _ => {}
                }
            }
        }
    }

    fn connect(&self, started: Instant, run: &mut Run) -> Result<String, String> {
        let token = connect_token();
        // The request the server sends for `kimi` (docs/kimi-protocol.md §7.2), which the mock
        // checks against its catalogue like Kimi.
        let body = json!({"scenario": "SCENARIO_CHAT", "tools": [{"type": "TOOL_TYPE_CRON_JOB"}],
            "message": {"role": "user", "blocks": [{"message_id": "", "text": {"content": "bench\n"}}],
                "scenario": "SCENARIO_CHAT", "is_goal": false},
            "options": {"thinking": true, "enable_plugin": true, "reasoning_effort": "REASONING_EFFORT_NONE",
                "model": "k2d6-chat"},
            "project_id": ""});
        let response = self
            .agent
            .post(format!("{}/apiv2/kimi.gateway.chat.v1.ChatService/Chat", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .header("X-Traffic-Id", "bench-user")
            .header("Content-Type", "application/connect+json")
            .send(&envelope::encode(0, body.to_string().as_bytes())[..])
            .map_err(|e| e.to_string())?;
        let mut reader = response.into_body().into_reader();
        let mut decoder = envelope::Decoder::new();
        let mut buf = vec![0; 8192];
        let mut chat_id = String::new();
        loop {
            let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("stream ended early".into());
            }
            decoder.push(&buf[..n]);
            while let Some(frame) = decoder.next_frame().map_err(|e| e.to_string())? {
                if frame.is_end_stream() {
                    return Ok(chat_id);
                }
                let event: Value = serde_json::from_slice(&frame.payload).map_err(|e| e.to_string())?;
                if let Some(id) = event["chat"]["id"].as_str() {
                    chat_id = id.to_string();
                }
                if let Some(text) = event["block"]["text"]["content"].as_str() {
                    run.piece(started, text);
                }
            }
        }
    }

    fn delete(&self, backend: Backend, chat_id: &str) {
        let _ = match backend {
            Backend::Legacy => self
                .agent
                .delete(format!("{}/api/chat/{chat_id}", self.base))
                .header("Authorization", format!("Bearer {}", self.access))
                .call(),
            Backend::Connect => self
                .agent
                .post(format!("{}/apiv2/kimi.chat.v1.ChatService/DeleteChat", self.base))
                .header("Authorization", format!("Bearer {}", connect_token()))
                .header("Content-Type", "application/json")
                .send(json!({"chat_id": chat_id}).to_string().as_bytes()),
        };
    }
}
