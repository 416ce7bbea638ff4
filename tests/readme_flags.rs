//! The README's configuration table and `--help` (drawn from `KNOBS` in src/config.rs) list the
//! same flags with the same environment variables, so neither can drift from the other.

use std::collections::BTreeSet;
use std::process::Command;

/// `(flag, env)` pairs of the `--help` text's knob lines (`--help` and `--version` have no env).
fn help_knobs() -> BTreeSet<(String, String)> {
    let output = Command::new(env!("CARGO_BIN_EXE_kimi-free-api")).arg("--help").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let flag = words.next()?.strip_prefix("--")?;
            let env = words.next()?;
            let is_env = !env.is_empty()
                && env.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            is_env.then(|| (format!("--{flag}"), env.to_string()))
        })
        .collect()
}

/// `(flag, env)` pairs of the rows of README's "## Configuration" table.
fn readme_knobs() -> BTreeSet<(String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n## Configuration\n").nth(1).expect("README has a Configuration section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.strip_prefix('|')?.split('|').map(str::trim).collect();
            let flag = cells.first()?.strip_prefix("`--")?.strip_suffix('`')?;
            let env = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((format!("--{flag}"), env.to_string()))
        })
        .collect()
}

#[test]
fn readme_configuration_table_lists_every_flag_of_help_and_no_other() {
    let help = help_knobs();
    let readme = readme_knobs();
    assert!(help.len() > 20, "too few knobs parsed from --help: {help:?}");
    let missing: Vec<_> = help.difference(&readme).collect();
    let extra: Vec<_> = readme.difference(&help).collect();
    assert!(missing.is_empty(), "flags in --help but not in README's Configuration table: {missing:?}");
    assert!(extra.is_empty(), "rows in README's Configuration table that --help does not know: {extra:?}");
}
