//! Autumn 2026 (`docs/kimi-protocol.md` §7): the model catalogue an account sees and its credits
//! (`GetAvailableModels`, `GetSubscriptionStats`, `GetSubscription`).

use std::sync::Mutex;

use serde_json::{Value, json};

use super::auth::{connect_identity, mock_claim};
use super::http::{Flow, Request, connect_error, json_response};
use super::state::State;

/// The catalogue an account sees: its token's `mock.catalogue`, else the script's.
pub(super) fn catalogue_name(st: &State, claim: &Value) -> String {
    claim["catalogue"].as_str().map_or_else(|| st.script.catalogue.clone(), str::to_string)
}

/// An effort ladder: (effort, display name) pairs.
fn ladder(efforts: &[(&str, &str)]) -> Value {
    efforts.iter().map(|(effort, name)| json!({"effort": effort, "displayName": name})).collect()
}

/// The Instant entry (`docs/kimi-protocol.md` §7.1).
fn instant_entry(id: &str, key: &str, efforts: &[(&str, &str)]) -> Value {
    json!({"id": id, "key": key, "scenario": "SCENARIO_CHAT", "displayName": "Instant",
        "reasoningEffortOptions": ladder(efforts), "defaultReasoningEffort": "REASONING_EFFORT_LOW"})
}

/// An agent entry (K2.8, K3, Swarm): ladder LOW/HIGH/MAX, context L or XL (`docs/kimi-protocol.md` §7.1).
fn agent_entry(id: &str, key: &str, name: &str, swarm: bool) -> Value {
    let efforts = [
        ("REASONING_EFFORT_LOW", "Standard"),
        ("REASONING_EFFORT_HIGH", "High"),
        ("REASONING_EFFORT_MAX", "Max"),
    ];
    let mut entry = json!({"id": id, "key": key, "displayName": name, "kimiPlusId": "ok-computer",
        "scenario": if swarm { "SCENARIO_OK_COMPUTER_SWARM" } else { "SCENARIO_OK_COMPUTER" },
        "agentMode": if swarm { "TYPE_ULTRA" } else { "TYPE_NORMAL" },
        "reasoningEffortOptions": ladder(&efforts), "defaultReasoningEffort": "REASONING_EFFORT_HIGH",
        "contextLengthOptions": [{"contextLength": "CONTEXT_LENGTH_L"},
            {"contextLength": "CONTEXT_LENGTH_XL", "available": false, "minMembershipLevel": "LEVEL_ADVANCED"}],
        "defaultContextLength": "CONTEXT_LENGTH_L"});
    if swarm {
        entry["minMembershipLevel"] = json!("LEVEL_BASIC");
    }
    entry
}

/// The `GetAvailableModels` answer (`docs/kimi-protocol.md` §7.1): `standard` is what a free
/// www.kimi.ai account got; `variant` has other ids, keys and an Instant ladder of LOW only (as
/// on www.kimi.com), so tests prove the server reads the catalogue. Anything else is `standard`.
pub(super) fn catalogue(name: &str) -> Value {
    let entries = if name == "variant" {
        [
            instant_entry("k2d7-chat", "k2d7", &[("REASONING_EFFORT_LOW", "Thinking")]),
            agent_entry("k28-agent", "k28", "K2.8", false),
            agent_entry("k3-agent-v2", "k3", "K3", false),
            agent_entry("k3-agent-swarm-v2", "k3-agent-ultra", "K3 Swarm", true),
        ]
    } else {
        let instant = [("REASONING_EFFORT_NONE", "Standard"), ("REASONING_EFFORT_LOW", "High")];
        [
            instant_entry("k2d6-chat", "k2d6", &instant),
            agent_entry("k28-agent-preview", "k28-preview", "K2.8 (Preview)", false),
            agent_entry("k3-agent", "k3", "K3", false),
            agent_entry("k3-agent-swarm", "k3-agent-ultra", "K3 Swarm", true),
        ]
    };
    let default = entries[0]["id"].clone();
    json!({"availableModels": entries, "defaultScenario": {"scenario": "SCENARIO_CHAT", "model": default}})
}

/// `ConfigService/GetAvailableModels`: the account's catalogue, or a 500 when it is `fail`.
pub(super) fn available_models(state: &Mutex<State>, request: Request) -> Flow {
    state.lock().unwrap().stats.catalogue_calls += 1;
    if connect_identity(state, &request).is_err() {
        return connect_error(request, 401, "unauthenticated");
    }
    let name = catalogue_name(&state.lock().unwrap(), &mock_claim(&request));
    if name == "fail" {
        return json_response(request, 500, json!({"code": "internal", "message": "mock catalogue down"}));
    }
    json_response(request, 200, catalogue(&name))
}

/// A credit balance (`docs/kimi-protocol.md` §7.7) with this share used.
fn credit_balance(used: f64) -> Value {
    json!({"id": "sb-1", "feature": "FEATURE_OMNI", "type": "SUBSCRIPTION", "unit": "UNIT_CREDIT",
        "amountUsedRatio": used, "expireTime": "2026-12-31T00:00:00Z", "domain": "DOMAIN_NEXUS"})
}

/// The share of credits used: the token's `mock.credits_used`, else the script's.
fn credits_used(state: &Mutex<State>, request: &Request) -> f64 {
    mock_claim(request)["credits_used"].as_f64().unwrap_or_else(|| state.lock().unwrap().script.credits_used)
}

/// `MembershipService/GetSubscriptionStats` (`docs/kimi-protocol.md` §7.7); 404 with `stats_missing`.
pub(super) fn subscription_stats(state: &Mutex<State>, request: Request) -> Flow {
    let missing = {
        let mut st = state.lock().unwrap();
        st.stats.stats_calls += 1;
        st.script.stats_missing
    };
    if connect_identity(state, &request).is_err() {
        return connect_error(request, 401, "unauthenticated");
    }
    if missing {
        return json_response(request, 404, json!({"code": "not_found"}));
    }
    let used = credits_used(state, &request);
    json_response(request, 200, json!({"subscriptionBalance": credit_balance(used)}))
}

/// `SubscriptionService/GetSubscription`: the user, and the credits in `balances`
/// (`docs/kimi-protocol.md` §7.7).
pub(super) fn subscription(state: &Mutex<State>, request: Request) -> Flow {
    match connect_identity(state, &request) {
        Ok(sub) => {
            let balance = credit_balance(credits_used(state, &request));
            json_response(request, 200, json!({"subscription": {"userId": sub}, "balances": [balance]}))
        }
        Err(_) => connect_error(request, 401, "unauthenticated"),
    }
}
