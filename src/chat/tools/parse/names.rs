//! A called tool's name matched to a declared one. Models call near-miss names: the tool's name in
//! another case, behind a wrapper's prefix (`bridge_read_file`, `functions.Bash`), or the name
//! another agent gives the same tool (`FileRead`, `read_file` for `Read`). Every form's calls go
//! through [`resolve`], in this order, the first step that decides winning:
//!
//! 1. the name exactly as declared;
//! 2. the one declared name equal to it but for ASCII case (`bash` for `Bash`);
//! 3. the same two after dropping the known wrapper prefixes [`PREFIXES`] (`bridge_read_file` for
//!    `read_file`, `functions.Bash` for `Bash`);
//! 4. the name, or the name without its prefixes, in one of the small synonym groups of
//!    [`ALIASES`] (any case): the one declared member of that group (`FileRead` for `Read`).
//!
//! A name that matches two declared tools at a step (`READ` when both `read` and `Read` are
//! declared) is ambiguous, and a name that matches none is unknown: either way no call, its
//! text stays text. Only the name is mapped; the arguments go as the model wrote them.

/// Prefixes a wrapper puts before the tools' names, dropped in any case and in any number.
pub(super) const PREFIXES: [&str; 3] = ["bridge_", "claw_", "functions."];

/// Names of the same tool in different agents: a name in a group calls the group's one declared
/// member. Kept small on purpose: only where the tools also take the same kind of arguments.
pub(super) const ALIASES: [&[&str]; 4] = [
    &["Read", "read_file", "FileRead"],
    &["Write", "write_file", "FileWrite"],
    &["Edit", "edit_file", "FileEdit"],
    &["Bash", "run_shell_command", "run_terminal_command"],
];

/// What one step of the matching found.
enum Found<'a> {
    One(&'a str),
    None,
    /// More than one declared tool: the name stays text.
    Ambiguous,
}

/// The declared tool `name` calls, if exactly one does ([module docs](self)).
pub(super) fn resolve<'a>(name: &str, declared: &[&'a str]) -> Option<&'a str> {
    let stripped = strip_prefixes(name);
    let steps: [&dyn Fn() -> Found<'a>; 5] = [
        &|| unique(declared.iter().filter(|d| **d == name)),
        &|| unique(declared.iter().filter(|d| d.eq_ignore_ascii_case(name))),
        &|| unique(declared.iter().filter(|d| Some(**d) == stripped)),
        &|| unique(declared.iter().filter(|d| stripped.is_some_and(|s| d.eq_ignore_ascii_case(s)))),
        &|| alias(stripped.unwrap_or(name), name, declared),
    ];
    for step in steps {
        match step() {
            Found::One(found) => return Some(found),
            Found::Ambiguous => return None,
            Found::None => {}
        }
    }
    None
}

/// The name without the wrapper prefixes it starts with, if it starts with one and has more.
fn strip_prefixes(name: &str) -> Option<&str> {
    let mut rest = name;
    while let Some(prefix) =
        PREFIXES.iter().find(|p| rest.get(..p.len()).is_some_and(|r| r.eq_ignore_ascii_case(p)))
    {
        rest = &rest[prefix.len()..];
    }
    (rest.len() < name.len() && !rest.is_empty()).then_some(rest)
}

fn unique<'a, 'b>(mut found: impl Iterator<Item = &'b &'a str>) -> Found<'a>
where
    'a: 'b,
{
    match (found.next(), found.next()) {
        (Some(one), None) => Found::One(one),
        (None, _) => Found::None,
        _ => Found::Ambiguous,
    }
}

/// The one declared member of the synonym group `name` (or `full`) is in.
fn alias<'a>(name: &str, full: &str, declared: &[&'a str]) -> Found<'a> {
    let in_group =
        |group: &&&[&str]| group.iter().any(|a| a.eq_ignore_ascii_case(name) || a.eq_ignore_ascii_case(full));
    let Some(group) = ALIASES.iter().find(in_group) else { return Found::None };
    unique(declared.iter().filter(|d| group.contains(d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_then_by_case_then_without_a_prefix_then_by_alias() {
        let declared = ["Read", "Write", "Bash", "read_notes", "get_time"];
        let cases = [
            ("Read", Some("Read")),
            ("read", Some("Read")),
            ("BASH", Some("Bash")),
            ("bridge_read_notes", Some("read_notes")),
            ("functions.Bash", Some("Bash")),
            ("Functions.bash", Some("Bash")),
            ("claw_bridge_get_time", Some("get_time")),
            ("FileRead", Some("Read")),
            ("read_file", Some("Read")),
            ("bridge_read_file", Some("Read")),
            ("write_file", Some("Write")),
            ("run_terminal_command", Some("Bash")),
            ("edit_file", None),
            ("Reader", None),
            ("bridge_", None),
            ("functions.", None),
            ("readfile", None),
            ("get-time", None),
            ("", None),
        ];
        for (name, expected) in cases {
            assert_eq!(resolve(name, &declared), expected, "{name}");
        }
    }

    #[test]
    fn an_exact_name_wins_and_an_ambiguous_one_is_none() {
        assert_eq!(resolve("read", &["read", "Read"]), Some("read"));
        assert_eq!(resolve("Read", &["read", "Read"]), Some("Read"));
        assert_eq!(resolve("READ", &["read", "Read"]), None, "two by case");
        assert_eq!(resolve("bridge_read", &["bridge_read", "read"]), Some("bridge_read"));
        assert_eq!(resolve("FileRead", &["Read", "read_file"]), None, "two in the group");
        assert_eq!(resolve("read_file", &["Read", "read_file"]), Some("read_file"));
        assert_eq!(resolve("Read", &["read_file"]), Some("read_file"), "a group works both ways");
        assert_eq!(resolve("bridge_Bash", &["bash", "BASH"]), None, "two by case after the prefix");
    }
}
