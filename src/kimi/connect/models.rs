//! Kimi's model catalogue (`docs/kimi-protocol.md` §7.1): which models an account has, what
//! each is called on the wire, and which reasoning efforts it offers. Every Connect chat names
//! one entry (`options.model`, its scenario, its agent fields); this file picks the entry a
//! model name asks for and the effort a request asks for. Pure: JSON in, choices out.

use serde::Deserialize;
use serde_json::Value;

use crate::chat::Mode;

/// The effort that turns thinking off, where a model offers it.
pub const EFFORT_NONE: &str = "REASONING_EFFORT_NONE";
/// The top effort: only when the caller asks for it (it costs more credits).
pub const EFFORT_MAX: &str = "REASONING_EFFORT_MAX";
/// Kimi's deep research: an agent run on the agent scenario (`docs/kimi-protocol.md` §7.2).
pub const DEEP_RESEARCHER: &str = "deep-researcher";

/// One model of the catalogue, as `GetAvailableModels` lists it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Entry {
    /// Sent as `options.model` (`k2d6-chat`, `k3-agent`).
    pub id: String,
    /// A short family name (`k2d6`, `k3`, `k28-preview`, `k3-agent-ultra`).
    pub key: String,
    pub scenario: String,
    pub display_name: String,
    /// Agent models: sent as `kimiplus_id` (`ok-computer`).
    pub kimi_plus_id: String,
    /// Agent models: `TYPE_NORMAL`, or `TYPE_ULTRA` for Swarm.
    pub agent_mode: String,
    pub reasoning_effort_options: Vec<EffortOption>,
    pub default_reasoning_effort: String,
    pub default_context_length: String,
    /// The plan a model needs, when the catalogue says (`LEVEL_BASIC` for Swarm).
    pub min_membership_level: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EffortOption {
    pub effort: String,
}

/// The models of one account, and which is its default.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalogue {
    pub entries: Vec<Entry>,
    /// The id of the default model (`defaultScenario.model`).
    pub default_id: String,
    /// The catalogue built into the server, used when Kimi's could not be read.
    pub builtin: bool,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Answer {
    available_models: Vec<Entry>,
    default_scenario: DefaultScenario,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DefaultScenario {
    model: String,
}

/// What a free www.kimi.ai account was offered on 2026-09-15 (`docs/kimi-protocol.md` §7.1):
/// the fallback when an account's own catalogue cannot be read.
const BUILTIN: &str = r#"{"availableModels":[
 {"id":"k2d6-chat","key":"k2d6","scenario":"SCENARIO_CHAT","displayName":"Instant",
  "reasoningEffortOptions":[{"effort":"REASONING_EFFORT_NONE"},{"effort":"REASONING_EFFORT_LOW"}],
  "defaultReasoningEffort":"REASONING_EFFORT_LOW"},
 {"id":"k28-agent-preview","key":"k28-preview","scenario":"SCENARIO_OK_COMPUTER","displayName":"K2.8 (Preview)",
  "kimiPlusId":"ok-computer","agentMode":"TYPE_NORMAL",
  "reasoningEffortOptions":[{"effort":"REASONING_EFFORT_LOW"},{"effort":"REASONING_EFFORT_HIGH"},
   {"effort":"REASONING_EFFORT_MAX"}],
  "defaultReasoningEffort":"REASONING_EFFORT_HIGH","defaultContextLength":"CONTEXT_LENGTH_L"},
 {"id":"k3-agent","key":"k3","scenario":"SCENARIO_OK_COMPUTER","displayName":"K3",
  "kimiPlusId":"ok-computer","agentMode":"TYPE_NORMAL",
  "reasoningEffortOptions":[{"effort":"REASONING_EFFORT_LOW"},{"effort":"REASONING_EFFORT_HIGH"},
   {"effort":"REASONING_EFFORT_MAX"}],
  "defaultReasoningEffort":"REASONING_EFFORT_HIGH","defaultContextLength":"CONTEXT_LENGTH_L"},
 {"id":"k3-agent-swarm","key":"k3-agent-ultra","scenario":"SCENARIO_OK_COMPUTER_SWARM","displayName":"K3 Swarm",
  "kimiPlusId":"ok-computer","agentMode":"TYPE_ULTRA",
  "reasoningEffortOptions":[{"effort":"REASONING_EFFORT_LOW"},{"effort":"REASONING_EFFORT_HIGH"},
   {"effort":"REASONING_EFFORT_MAX"}],
  "defaultReasoningEffort":"REASONING_EFFORT_HIGH","defaultContextLength":"CONTEXT_LENGTH_L",
  "minMembershipLevel":"LEVEL_BASIC"}],
 "defaultScenario":{"scenario":"SCENARIO_CHAT","model":"k2d6-chat"}}"#;

/// Which family a model name asks for, by the words users write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Default,
    /// Instant, the K2 line (`kimi-k2`, `kimi-k2.6`, `kimi-instant`).
    Instant,
    K28,
    K3,
    Swarm,
}

impl Catalogue {
    /// The catalogue in a `GetAvailableModels` answer; `None` when it lists no usable model.
    pub fn parse(answer: &Value) -> Option<Catalogue> {
        let answer = Answer::deserialize(answer).ok()?;
        let entries: Vec<Entry> = answer
            .available_models
            .into_iter()
            .filter(|e| !e.id.is_empty() && !e.scenario.is_empty())
            .collect();
        if entries.is_empty() {
            return None;
        }
        Some(Catalogue { entries, default_id: answer.default_scenario.model, builtin: false })
    }

    /// The built-in catalogue (`BUILTIN`).
    pub fn builtin() -> Catalogue {
        let answer: Value = serde_json::from_str(BUILTIN).unwrap_or_default();
        let mut catalogue = Catalogue::parse(&answer).unwrap_or(Catalogue {
            entries: Vec::new(),
            default_id: String::new(),
            builtin: true,
        });
        catalogue.builtin = true;
        catalogue
    }

    /// The account's default model: the one `defaultScenario` names, else the first that is
    /// not an agent.
    pub fn default_entry(&self) -> &Entry {
        self.entries
            .iter()
            .find(|e| e.id == self.default_id)
            .or_else(|| self.entries.iter().find(|e| !e.is_agent()))
            .unwrap_or(&self.entries[0])
    }

    /// The entry a model name selects: a catalogue id or key (with or without `kimi-`, with
    /// suffixes after it), else the family its words name, else the default.
    pub fn pick(&self, model: &str) -> &Entry {
        let name = model.trim().to_ascii_lowercase();
        let bare = name.strip_prefix("kimi-").unwrap_or(&name);
        let family = family(bare);
        let named = self.by_id(bare).filter(|e| family != Family::Swarm || e.is_swarm());
        if let Some(entry) = named {
            return entry;
        }
        match family {
            Family::Default => self.default_entry(),
            Family::Instant => self.instant(),
            Family::K28 => self.find(|e| e.key.starts_with("k28") || e.id.starts_with("k28")),
            Family::K3 => self.find(|e| (e.key == "k3" || e.id.starts_with("k3")) && !e.is_swarm()),
            Family::Swarm => self.find(Entry::is_swarm),
        }
    }

    /// The entry deep research runs on: K3's.
    pub fn research(&self) -> &Entry {
        self.pick("kimi-k3")
    }

    /// The longest id or key that the name is, or starts with (then a `-` and suffixes).
    fn by_id(&self, name: &str) -> Option<&Entry> {
        let matches = |word: &str| {
            !word.is_empty()
                && (name == word || name.strip_prefix(word).is_some_and(|rest| rest.starts_with('-')))
        };
        self.entries
            .iter()
            .filter_map(|e| {
                let len =
                    [e.id.as_str(), e.key.as_str()].iter().filter(|w| matches(w)).map(|w| w.len()).max()?;
                Some((len, e))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, e)| e)
    }

    fn instant(&self) -> &Entry {
        let default = self.default_entry();
        if !default.is_agent() {
            return default;
        }
        self.find(|e| !e.is_agent())
    }

    /// The first entry that `test` accepts, else the default.
    fn find(&self, test: impl Fn(&Entry) -> bool) -> &Entry {
        self.entries.iter().find(|e| test(e)).unwrap_or_else(|| self.default_entry())
    }
}

/// The family named by the words of a model name (`kimi-` already removed).
fn family(name: &str) -> Family {
    let words: Vec<&str> = name.split(['-', '_', ' ']).collect();
    let has = |word: &str| words.contains(&word);
    if name.contains("swarm") || has("ultra") {
        Family::Swarm
    } else if has("k3") {
        Family::K3
    } else if has("k2.8") || has("k28") {
        Family::K28
    } else if words.iter().any(|w| w.starts_with("k2")) || has("instant") {
        Family::Instant
    } else {
        Family::Default
    }
}

/// Where an effort stands on the ladder; a name this server does not know sits in the middle.
fn rank(effort: &str) -> u8 {
    const ORDER: [&str; 7] = ["NONE", "MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH", "MAX"];
    let name = effort.strip_prefix("REASONING_EFFORT_").unwrap_or(effort);
    ORDER.iter().position(|known| *known == name).map_or(3, |i| i as u8)
}

impl Entry {
    /// An agent model (K3, K2.8, Swarm): the agent scenario and a `kimiplus_id`.
    pub fn is_agent(&self) -> bool {
        self.scenario.starts_with("SCENARIO_OK_COMPUTER") || !self.kimi_plus_id.is_empty()
    }

    pub fn is_swarm(&self) -> bool {
        self.scenario.ends_with("_SWARM") || self.agent_mode == "TYPE_ULTRA"
    }

    fn offers(&self, effort: &str) -> bool {
        self.reasoning_effort_options.iter().any(|o| o.effort == effort)
    }

    /// The effort for a request, from this model's own ladder: thinking takes the highest below
    /// MAX (MAX only when asked); no thinking takes NONE where offered, else the lowest. `None`
    /// when the model lists no efforts.
    pub fn effort(&self, mode: &Mode) -> Option<&str> {
        let mut ladder: Vec<&str> = self.reasoning_effort_options.iter().map(|o| o.effort.as_str()).collect();
        ladder.sort_by_key(|effort| rank(effort));
        let thinking = mode.thinking || mode.research || mode.max_effort;
        if !thinking {
            return Some(if self.offers(EFFORT_NONE) { EFFORT_NONE } else { ladder.first()? });
        }
        if mode.max_effort && self.offers(EFFORT_MAX) {
            return Some(EFFORT_MAX);
        }
        ladder.iter().rev().find(|e| **e != EFFORT_MAX && **e != EFFORT_NONE).or(ladder.last()).copied()
    }

    /// What `/v1/models` says a name selects.
    pub fn describe(&self) -> String {
        let name = if self.display_name.is_empty() { &self.id } else { &self.display_name };
        let kind =
            if self.is_agent() { "an agent model; Kimi refuses it on free accounts" } else { "a chat model" };
        format!("{name} ({}, {}): {kind}", self.id, self.scenario)
    }
}

#[cfg(test)]
#[path = "models_tests.rs"]
mod tests;
