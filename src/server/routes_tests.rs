//! The welcome page's endpoint table against the route table (`resolve`), parsed from both.

use super::*;

/// The paths named in `resolve`'s match arms, read from this file's source.
fn route_table_paths() -> Vec<String> {
    let source = include_str!("routes.rs");
    let body = source.split("fn resolve(").nth(1).expect("resolve in routes.rs");
    let body = body.split("\n}\n").next().unwrap();
    let mut paths = Vec::new();
    for line in body.lines().filter(|line| line.contains("=> (Route::")) {
        let arms = line.trim().split("=>").next().unwrap();
        for arm in arms.split('|') {
            if let Some(path) = arm.trim().strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
                paths.push(path.to_string());
            }
        }
    }
    paths
}

/// `(method, path)` of each row of the welcome page's endpoint table.
fn welcome_rows() -> Vec<(String, String)> {
    let table = WELCOME_PAGE.split("<table>").nth(1).unwrap().split("</table>").next().unwrap();
    table
        .lines()
        .filter_map(|line| {
            let cell = line.trim().strip_prefix("<tr><td><code>")?.split("</code>").next()?;
            let (method, path) = cell.split_once(' ')?;
            Some((method.to_string(), path.to_string()))
        })
        .collect()
}

#[test]
fn welcome_page_endpoint_table_lists_every_route() {
    let paths = route_table_paths();
    assert!(paths.len() >= 10, "too few routes parsed: {paths:?}");
    let rows = welcome_rows();
    // The Gemini model paths come from `gemini_target`, not literal arms: the page lists them too.
    let gemini = ["/v1/models/MODEL", "/v1beta/models/MODEL", "/v1beta/models/MODEL:generateContent"];
    for path in paths.iter().map(String::as_str).chain(gemini) {
        let (_, allowed) = resolve(path).expect("a route");
        for method in allowed.iter().filter(|m| **m != Method::Head) {
            let row = (method.to_string(), path.to_string());
            assert!(rows.contains(&row), "welcome page lacks `{method} {path}`; it has {rows:?}");
        }
    }
    for (method, path) in &rows {
        let (_, allowed) =
            resolve(path).unwrap_or_else(|| panic!("welcome page lists {path}, which is no route"));
        assert!(
            allowed.iter().any(|m| m.to_string() == *method),
            "welcome page: {method} is not allowed on {path}"
        );
    }
}

#[test]
fn welcome_page_python_example_defines_what_it_uses() {
    let python = WELCOME_PAGE
        .split("<pre>import os")
        .nth(1)
        .expect("the Python example imports os")
        .split("</pre>")
        .next()
        .unwrap();
    assert!(python.contains("api_key=os.environ[\"KIMI_TOKEN\"]"), "{python}");
    assert!(!python.contains(" if chunk.choices else None"), "{python}");
}
