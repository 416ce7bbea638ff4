use serde_json::json;

use super::*;

fn mode(model: &str) -> Mode {
    Mode::from_model_name(model)
}

/// A catalogue whose ids all differ from the built-in one (as a mainland account's may).
fn variant() -> Catalogue {
    let answer = json!({"availableModels": [
        {"id": "k3-agent-v2", "key": "k3", "scenario": "SCENARIO_OK_COMPUTER", "kimiPlusId": "ok-computer",
         "reasoningEffortOptions": [{"effort": "REASONING_EFFORT_LOW"}, {"effort": "REASONING_EFFORT_MAX"},
                                    {"effort": "REASONING_EFFORT_HIGH"}]},
        {"id": "k2d7-chat", "key": "k2d7", "scenario": "SCENARIO_CHAT",
         "reasoningEffortOptions": [{"effort": "REASONING_EFFORT_LOW"}]}],
        "defaultScenario": {"scenario": "SCENARIO_CHAT", "model": "k2d7-chat"}});
    Catalogue::parse(&answer).unwrap()
}

#[test]
fn the_builtin_catalogue_is_the_free_account_of_september() {
    let catalogue = Catalogue::builtin();
    assert!(catalogue.builtin);
    let ids: Vec<&str> = catalogue.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["k2d6-chat", "k28-agent-preview", "k3-agent", "k3-agent-swarm"]);
    assert_eq!(catalogue.default_entry().id, "k2d6-chat");
    assert_eq!(catalogue.default_entry().scenario, "SCENARIO_CHAT");
}

#[test]
fn names_select_entries() {
    let catalogue = Catalogue::builtin();
    let cases = [
        ("kimi", "k2d6-chat"),
        ("kimi-latest", "k2d6-chat"),
        ("gpt-4o", "k2d6-chat"),
        ("claude-sonnet-4-5", "k2d6-chat"),
        ("kimi-k2", "k2d6-chat"),
        ("kimi-k2.6-thinking", "k2d6-chat"),
        ("kimi-instant", "k2d6-chat"),
        ("kimi-k3", "k3-agent"),
        ("KIMI-K3-thinking-max", "k3-agent"),
        ("kimi-k3-search", "k3-agent"),
        ("kimi-k2.8", "k28-agent-preview"),
        ("kimi-k28-thinking", "k28-agent-preview"),
        ("kimi-k3-swarm", "k3-agent-swarm"),
        ("k3-agent", "k3-agent"),
        ("kimi-k3-agent-swarm", "k3-agent-swarm"),
        ("k2d6-chat", "k2d6-chat"),
        ("kimi-k3-agent-thinking", "k3-agent"),
        ("k28-preview", "k28-agent-preview"),
    ];
    for (name, id) in cases {
        assert_eq!(catalogue.pick(name).id, id, "{name}");
    }
    assert_eq!(catalogue.research().id, "k3-agent");
}

#[test]
fn ids_are_read_from_the_catalogue_not_assumed() {
    let catalogue = variant();
    assert!(!catalogue.builtin);
    assert_eq!(catalogue.pick("kimi").id, "k2d7-chat");
    assert_eq!(catalogue.pick("kimi-k2").id, "k2d7-chat");
    assert_eq!(catalogue.pick("kimi-k3").id, "k3-agent-v2");
    assert_eq!(catalogue.pick("k3-agent-v2-thinking").id, "k3-agent-v2");
    // What the catalogue lacks falls back to the default.
    assert_eq!(catalogue.pick("kimi-k3-swarm").id, "k2d7-chat");
    assert_eq!(catalogue.pick("kimi-k2.8").id, "k2d7-chat");
}

#[test]
fn efforts_come_from_each_models_ladder() {
    let builtin = Catalogue::builtin();
    let variant = variant();
    let cases = [
        (&builtin, "kimi", Some(EFFORT_NONE)),
        (&builtin, "kimi-thinking", Some("REASONING_EFFORT_LOW")),
        (&builtin, "kimi-max", Some("REASONING_EFFORT_LOW")),
        (&builtin, "kimi-k3", Some("REASONING_EFFORT_LOW")),
        (&builtin, "kimi-k3-thinking", Some("REASONING_EFFORT_HIGH")),
        (&builtin, "kimi-k3-thinking-max", Some(EFFORT_MAX)),
        (&builtin, "kimi-k3-max", Some(EFFORT_MAX)),
        (&builtin, "kimi-k3-research", Some("REASONING_EFFORT_HIGH")),
        // Instant without NONE: the lowest it has; the ladder's order in the answer is not trusted.
        (&variant, "kimi", Some("REASONING_EFFORT_LOW")),
        (&variant, "kimi-thinking", Some("REASONING_EFFORT_LOW")),
        (&variant, "kimi-k3-thinking", Some("REASONING_EFFORT_HIGH")),
        (&variant, "kimi-k3", Some("REASONING_EFFORT_LOW")),
    ];
    for (catalogue, name, effort) in cases {
        let entry = catalogue.pick(name);
        assert_eq!(entry.effort(&mode(name)), effort, "{name}");
        if let Some(effort) = effort {
            assert!(entry.offers(effort), "{name}: {effort} is not on {}'s ladder", entry.id);
        }
    }
    let bare = Entry { id: "x".into(), scenario: "SCENARIO_CHAT".into(), ..Entry::default() };
    assert_eq!(bare.effort(&mode("kimi-thinking")), None);
}

#[test]
fn agents_and_swarm_are_told_apart() {
    let catalogue = Catalogue::builtin();
    assert!(!catalogue.pick("kimi").is_agent());
    assert!(catalogue.pick("kimi-k3").is_agent() && !catalogue.pick("kimi-k3").is_swarm());
    assert!(catalogue.pick("kimi-k3-swarm").is_swarm());
    assert!(catalogue.pick("kimi-k3").describe().contains("refuses it on free accounts"));
}

#[test]
fn answers_without_models_are_no_catalogue() {
    for answer in
        [json!({}), json!({"availableModels": []}), json!({"availableModels": [{"id": "x"}]}), json!([1])]
    {
        assert_eq!(Catalogue::parse(&answer), None, "{answer}");
    }
    // No default named: the first model that is not an agent.
    let answer = json!({"availableModels": [{"id": "a", "scenario": "SCENARIO_OK_COMPUTER", "kimiPlusId": "x"},
                                            {"id": "b", "scenario": "SCENARIO_CHAT"}]});
    assert_eq!(Catalogue::parse(&answer).unwrap().default_entry().id, "b");
}
