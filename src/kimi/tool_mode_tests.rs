use super::*;

fn temp_state(name: &str) -> (Arc<StateDir>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("kimi-tool-mode-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (state, problem) = StateDir::open(Some(&dir));
    assert_eq!(problem, None);
    (Arc::new(state), dir)
}

#[test]
fn auto_starts_native_and_a_refusal_switches_the_account_for_good() {
    let (state, dir) = temp_state("refusal");
    let modes = ToolModes::new(ToolMode::Auto, state.clone());
    assert_eq!(modes.offer("acc1"), ToolOffer::Native);
    assert!(modes.describe("acc1").starts_with("native (auto"));
    assert!(modes.refused("acc1", "invalid_argument: TOOL_TYPE_DEVICE_TOOL"));
    assert_eq!(modes.offer("acc1"), ToolOffer::Prompt);
    assert_eq!(modes.offer("acc2"), ToolOffer::Native, "only that account");
    assert_eq!(modes.switches(), 1);
    let restarted = ToolModes::new(ToolMode::Auto, state);
    assert_eq!(restarted.offer("acc1"), ToolOffer::Prompt, "kept in the state directory");
    assert!(
        restarted.describe("acc1").contains("Kimi refused the declared tools"),
        "{}",
        restarted.describe("acc1")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn two_missing_required_calls_in_a_row_switch_but_a_call_between_resets() {
    let (state, dir) = temp_state("misses");
    let modes = ToolModes::new(ToolMode::Auto, state);
    modes.outcome("a", false);
    modes.outcome("a", true);
    modes.outcome("a", false);
    assert_eq!(modes.offer("a"), ToolOffer::Native, "not in a row");
    modes.outcome("a", false);
    assert_eq!(modes.offer("a"), ToolOffer::Prompt);
    assert!(modes.describe("a").contains("2 required tool calls in a row never came"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_fixed_mode_never_switches_and_the_doctor_teaches_auto() {
    let (state, dir) = temp_state("fixed");
    let native = ToolModes::new(ToolMode::Native, state.clone());
    assert!(!native.refused("a", "TOOL_TYPE_DEVICE_TOOL"));
    native.outcome("a", false);
    native.outcome("a", false);
    assert_eq!(native.offer("a"), ToolOffer::Native);
    assert_eq!(native.describe("a"), "native (--tool-mode)");
    assert_eq!(ToolModes::new(ToolMode::Prompt, state.clone()).offer("a"), ToolOffer::Prompt);
    let auto = ToolModes::new(ToolMode::Auto, state.clone());
    auto.learn("b", ToolOffer::Prompt, "the doctor's probe: prompt answered, native did not".into());
    assert_eq!(ToolModes::new(ToolMode::Auto, state).offer("b"), ToolOffer::Prompt);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn memory_only_state_still_remembers_a_switch() {
    let modes = ToolModes::new(ToolMode::Auto, Arc::new(StateDir::memory()));
    assert!(modes.refused("m", "device_tool"));
    assert_eq!(modes.offer("m"), ToolOffer::Prompt);
}

#[test]
fn tool_mode_names_parse_back() {
    for mode in [ToolMode::Native, ToolMode::Prompt, ToolMode::Auto] {
        assert_eq!(ToolMode::parse(mode.name()), Some(mode));
    }
    assert_eq!(ToolMode::parse("both"), None);
}
