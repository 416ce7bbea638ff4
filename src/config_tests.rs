//! The configuration's unit tests: parsing, the environment, and `--help` drawn from the same table.

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn defaults_without_flags() {
    assert_eq!(parse(args(&[]), no_env), Ok(Command::Serve(Config::default())));
}

#[test]
fn flags_win_over_environment() {
    let env = |name: &str| (name == "PORT").then(|| "9000".to_string());
    let Ok(Command::Serve(config)) = parse(args(&["--port", "9100"]), env) else { panic!() };
    assert_eq!(config.port, 9100);
    let Ok(Command::Serve(config)) = parse(args(&[]), env) else { panic!() };
    assert_eq!(config.port, 9000);
}

#[test]
fn equals_form_and_trailing_slash() {
    let Ok(Command::Serve(config)) = parse(args(&["--kimi-base-url=http://127.0.0.1:9/"]), no_env) else {
        panic!()
    };
    assert_eq!(config.kimi_base_url, "http://127.0.0.1:9");
}

#[test]
fn bad_values_are_named() {
    let err = parse(args(&["--workers", "0"]), no_env).unwrap_err();
    assert!(err.to_string().contains("--workers"), "{err}");
    let err = parse(args(&["--nope", "1"]), no_env).unwrap_err();
    assert!(err.to_string().contains("unknown flag --nope"), "{err}");
    let env = |name: &str| (name == "QUEUE_DEPTH").then(|| "x".to_string());
    let err = parse(args(&[]), env).unwrap_err();
    assert!(err.to_string().starts_with("QUEUE_DEPTH"), "{err}");
    assert!(parse(args(&["--port"]), no_env).is_err());
}

#[test]
fn a_lone_unknown_flag_is_unknown_not_missing_its_value() {
    let err = parse(args(&["--bogus"]), no_env).unwrap_err();
    assert_eq!(err.to_string(), "unknown flag --bogus; see --help");
    let err = parse(args(&["--port", "1", "--bogus"]), no_env).unwrap_err();
    assert!(err.to_string().contains("unknown flag --bogus"), "{err}");
}

#[test]
fn state_dir_from_systemd_unless_set() {
    let systemd = |name: &str| (name == "STATE_DIRECTORY").then(|| "/var/lib/kimi:/other".to_string());
    let Ok(Command::Serve(config)) = parse(args(&[]), systemd) else { panic!() };
    assert_eq!(config.state_dir, PathBuf::from("/var/lib/kimi"));
    let Ok(Command::Serve(config)) = parse(args(&["--state-dir", "/data"]), systemd) else { panic!() };
    assert_eq!(config.state_dir, PathBuf::from("/data"));
    let Ok(Command::Serve(config)) = parse(args(&[]), no_env) else { panic!() };
    assert_eq!(config.state_dir, PathBuf::from("./kimi-state"));
}

/// An environment for [`parse`].
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

#[test]
fn doctor_resolves_the_state_directory_as_the_server_does() {
    let envs: [Env; 4] = [
        &no_env,
        &|name: &str| (name == "STATE_DIRECTORY").then(|| "/var/lib/kimi-free-api".to_string()),
        &|name: &str| (name == "STATE_DIR").then(|| "/srv/kimi".to_string()),
        &|name: &str| match name {
            "STATE_DIRECTORY" => Some("/var/lib/kimi-free-api".into()),
            "STATE_DIR" => Some("/srv/kimi".into()),
            _ => None,
        },
    ];
    for env in envs {
        for flags in [&[][..], &["--state-dir", "/data"][..]] {
            let Ok(Command::Serve(server)) = parse(args(flags), env) else { panic!() };
            let doctor_args = [&["doctor", "tok"][..], flags].concat();
            let Ok(Command::Doctor { config, .. }) = parse(args(&doctor_args), env) else { panic!() };
            assert_eq!(config.state_dir, server.state_dir, "{flags:?}");
        }
    }
}

#[test]
fn doctor_flags_rotate_server_and_api_key_are_the_doctors_alone() {
    let given = args(&["doctor", "--rotate", "--server", "http://127.0.0.1:8000/", "--api-key=k-1", "tok"]);
    let Ok(Command::Doctor { args: doctor, .. }) = parse(given, no_env) else { panic!() };
    let expected = DoctorArgs {
        token: Some("tok".into()),
        rotate: true,
        server: Some("http://127.0.0.1:8000".into()),
        api_key: Some("k-1".into()),
    };
    assert_eq!(doctor, expected);
    let err = parse(args(&["doctor", "--server", "localhost:8000"]), no_env).unwrap_err();
    assert!(err.to_string().starts_with("--server: expected an http(s) URL"), "{err}");
    assert!(parse(args(&["doctor", "--api-key"]), no_env).unwrap_err().to_string().contains("needs a value"));
    for flag in ["--rotate", "--server"] {
        let err = parse(args(&[flag, "x"]), no_env).unwrap_err();
        assert!(err.to_string().contains(&format!("unknown flag {flag}")), "{err}");
    }
}

#[test]
fn regions_and_doctor() {
    let Ok(Command::Serve(config)) = parse(args(&["--kimi-region", "global"]), no_env) else { panic!() };
    assert_eq!(config.kimi_region, RegionChoice::Global);
    assert!(parse(args(&["--kimi-region", "mars"]), no_env).is_err());
    let Ok(Command::Doctor { args: doctor, config }) = parse(args(&["doctor", "tok", "--port", "1"]), no_env)
    else {
        panic!()
    };
    assert_eq!((doctor.token.as_deref(), config.port, doctor.rotate), (Some("tok"), 1, false));
    let env = |name: &str| (name == "KIMI_TOKEN").then(|| "from-env".to_string());
    let Ok(Command::Doctor { args: doctor, .. }) = parse(args(&["doctor"]), env) else { panic!() };
    assert_eq!(doctor.token.as_deref(), Some("from-env"));
    assert!(parse(args(&["stray"]), no_env).is_err(), "positional arguments only after doctor");
}

#[test]
fn pool_knobs_and_secrets_that_never_show() {
    let env = |name: &str| match name {
        "KIMI_TOKENS" => Some(" rt-a, rt-b ,".to_string()),
        "API_KEYS" => Some("k1,k2".to_string()),
        _ => None,
    };
    let flags =
        args(&["--tokens-file", "/etc/kimi/tokens", "--account-streams", "3", "--account-wait", "0.5"]);
    let Ok(Command::Serve(config)) = parse(flags, env) else { panic!() };
    assert_eq!(config.tokens, Secrets(vec!["rt-a".into(), "rt-b".into()]));
    assert_eq!(config.api_keys.0, ["k1", "k2"]);
    assert_eq!(config.tokens_file, Some(PathBuf::from("/etc/kimi/tokens")));
    assert_eq!((config.account_streams, config.account_wait), (3, Duration::from_millis(500)));
    let shown = format!("{config:?}");
    assert!(!shown.contains("rt-a") && !shown.contains("k1"), "{shown}");
    assert!(parse(args(&["--account-streams", "0"]), no_env).is_err());
    assert!(parse(args(&["--account-wait", "-1"]), no_env).is_err());
    let err = parse(args(&["--account-wait", "secret-value"]), no_env).unwrap_err();
    assert!(err.to_string().starts_with("--account-wait"), "{err}");
}

#[test]
fn health_takes_an_optional_url() {
    let Ok(Command::Health { url, config }) = parse(args(&["health", "--port", "9"]), no_env) else {
        panic!()
    };
    assert_eq!((url, config.port), (None, 9));
    let Ok(Command::Health { url, .. }) = parse(args(&["health", "http://h:1/healthz"]), no_env) else {
        panic!()
    };
    assert_eq!(url.as_deref(), Some("http://h:1/healthz"));
}

#[test]
fn help_shows_the_real_defaults() {
    let text = help_text();
    let defaults = Config::default();
    let queue = text.lines().find(|l| l.contains("--queue")).unwrap();
    assert!(queue.ends_with(&format!("[{}]", defaults.queue_depth)), "{queue}");
    let timeout = text.lines().find(|l| l.contains("--upstream-timeout")).unwrap();
    assert!(timeout.ends_with("[120]"), "{timeout}");
}

#[test]
fn connection_timeouts() {
    let env = |name: &str| (name == "IDLE_TIMEOUT").then(|| "5".to_string());
    let Ok(Command::Serve(config)) =
        parse(args(&["--request-timeout", "2.5", "--write-timeout=7", "--drain-timeout", "9"]), env)
    else {
        panic!()
    };
    assert_eq!(config.idle_timeout, Duration::from_secs(5));
    assert_eq!(config.request_timeout, Duration::from_millis(2500));
    assert_eq!(config.write_timeout, Duration::from_secs(7));
    assert_eq!(config.drain_timeout, Duration::from_secs(9));
    for bad in ["0", "-1", "x", "86401"] {
        let err = parse(args(&["--idle-timeout", bad]), no_env).unwrap_err();
        assert!(err.to_string().starts_with("--idle-timeout"), "{err}");
    }
    let text = help_text();
    let drain = text.lines().find(|l| l.contains("--drain-timeout")).unwrap();
    assert!(drain.contains("DRAIN_TIMEOUT") && drain.ends_with("[30]"), "{drain}");
}

#[test]
fn request_heads_are_bounded() {
    assert_eq!(Config::default().max_header_bytes, 65536);
    let line = help_text().lines().find(|l| l.contains("--max-header-bytes")).unwrap().to_string();
    assert!(line.contains("MAX_HEADER_BYTES") && line.ends_with("[65536]"), "{line}");
    let env = |name: &str| (name == "MAX_HEADER_BYTES").then(|| "8192".to_string());
    let Ok(Command::Serve(config)) = parse(args(&[]), env) else { panic!() };
    assert_eq!(config.max_header_bytes, 8192);
    let Ok(Command::Serve(config)) = parse(args(&["--max-header-bytes=1000"]), env) else { panic!() };
    assert_eq!(config.max_header_bytes, 1000);
    for bad in ["0", "-1", "64k"] {
        let err = parse(args(&["--max-header-bytes", bad]), no_env).unwrap_err();
        assert!(err.to_string().starts_with("--max-header-bytes"), "{err}");
    }
}

#[test]
fn browser_identity_from_flags_and_environment() {
    let defaults = Config::default();
    assert_eq!(defaults.kimi_web_version, "2.3.0");
    assert!(defaults.user_agent.contains("Chrome/146."), "{}", defaults.user_agent);
    let env = |name: &str| (name == "USER_AGENT").then(|| "Mozilla/5.0 Chrome/150.0.0.0".to_string());
    let Ok(Command::Serve(config)) = parse(args(&["--kimi-web-version", "2.4.1"]), env) else { panic!() };
    assert_eq!(
        (config.kimi_web_version.as_str(), config.user_agent.as_str()),
        ("2.4.1", "Mozilla/5.0 Chrome/150.0.0.0")
    );
    let env = |name: &str| (name == "KIMI_WEB_VERSION").then(|| "2.5.0".to_string());
    let Ok(Command::Serve(config)) = parse(args(&["--user-agent=Firefox/140"]), env) else { panic!() };
    assert_eq!((config.kimi_web_version.as_str(), config.user_agent.as_str()), ("2.5.0", "Firefox/140"));
    let text = help_text();
    let line = text.lines().find(|l| l.contains("--kimi-web-version")).unwrap();
    assert!(line.contains("KIMI_WEB_VERSION") && line.ends_with("[2.3.0]"), "{line}");
    let line = text.lines().find(|l| l.contains("--user-agent")).unwrap();
    assert!(line.contains("USER_AGENT") && line.ends_with(&format!("[{}]", defaults.user_agent)), "{line}");
}

#[test]
fn header_values_with_line_breaks_or_nothing_are_refused() {
    for flag in ["--kimi-web-version", "--user-agent"] {
        for bad in ["", "  ", "2.3.0\r\nX-Evil: 1", "Mozilla\n", "a\tb", "x\u{7f}"] {
            let err = parse(args(&[flag, bad]), no_env).unwrap_err();
            assert!(err.to_string().starts_with(flag), "{err}");
        }
    }
    let env = |name: &str| (name == "USER_AGENT").then(|| "Chrome/146\r\nCookie: x".to_string());
    let err = parse(args(&[]), env).unwrap_err();
    assert!(err.to_string().starts_with("USER_AGENT") && err.to_string().contains("control"), "{err}");
}

#[test]
fn pacing_is_off_by_default_and_takes_fractional_seconds() {
    assert_eq!(Config::default().account_min_interval, Duration::ZERO);
    let line = help_text().lines().find(|l| l.contains("--account-min-interval")).unwrap().to_string();
    assert!(line.ends_with("[0]"), "{line}");
    let Ok(Command::Serve(config)) = parse(args(&["--account-min-interval", "0.3"]), no_env) else {
        panic!()
    };
    assert_eq!(config.account_min_interval, Duration::from_millis(300));
    let env = |name: &str| (name == "ACCOUNT_MIN_INTERVAL").then(|| "6".to_string());
    let Ok(Command::Serve(config)) = parse(Vec::new(), env) else { panic!() };
    assert_eq!(config.kimi_settings().account_min_interval, Duration::from_secs(6));
    for bad in ["-1", "3601", "soon"] {
        let err = parse(args(&["--account-min-interval", bad]), no_env).unwrap_err();
        assert!(err.to_string().starts_with("--account-min-interval"), "{err}");
    }
}

#[test]
fn one_stream_per_account_by_default() {
    assert_eq!(Config::default().account_streams, 1);
    let line = help_text().lines().find(|l| l.contains("--account-streams")).unwrap().to_string();
    assert!(line.ends_with("[1]"), "{line}");
}

#[test]
fn help_lists_every_knob() {
    let text = help_text();
    for knob in KNOBS {
        assert!(text.contains(knob.flag) && text.contains(knob.env));
    }
    assert_eq!(parse(args(&["--help"]), no_env), Ok(Command::Help));
}

/// The flags `--help` lists, in its order (`--help` and `--version` aside).
fn flags_in_help() -> Vec<String> {
    let text = help_text();
    let listed = text.lines().filter_map(|line| line.trim_start().strip_prefix("--"));
    let names = listed.filter_map(|rest| rest.split_whitespace().next());
    names.filter(|name| !["help", "version"].contains(name)).map(|name| format!("--{name}")).collect()
}

#[test]
fn help_and_parsing_come_from_one_table() {
    let flags: Vec<&str> = KNOBS.iter().map(|knob| knob.flag).collect();
    assert_eq!(flags_in_help(), flags, "every row once in --help, and nothing else");
    let text = help_text();
    for knob in KNOBS {
        let line = text.lines().find(|l| l.trim_start().starts_with(&format!("{} ", knob.flag))).unwrap();
        assert!(line.contains(&format!(" {} ", knob.env)) && line.contains(knob.help), "{line}");
    }
    let mut seen = std::collections::HashSet::new();
    assert!(
        KNOBS.iter().all(|k| seen.insert(k.flag) && seen.insert(k.env)),
        "flags and variables are unique"
    );
}

#[test]
fn every_flag_in_help_parses_its_shown_default_back_to_the_default() {
    let text = help_text();
    let defaults = Config::default();
    for flag in flags_in_help() {
        let line = text.lines().find(|l| l.trim_start().starts_with(&format!("{flag} "))).unwrap();
        let shown = line.rsplit_once('[').and_then(|(_, rest)| rest.strip_suffix(']')).unwrap();
        // Unset options and secrets show a word, not a value.
        if ["none", "set", "built in"].contains(&shown) {
            assert!(parse(args(&[&flag, unset_sample(&flag)]), no_env).is_ok(), "{flag}");
            continue;
        }
        let Ok(Command::Serve(config)) = parse(args(&[&flag, shown]), no_env) else {
            panic!("{flag} {shown}")
        };
        assert_eq!(config, defaults, "{flag} {shown}");
    }
}

#[test]
fn every_variable_sets_what_its_flag_sets() {
    for knob in KNOBS {
        let value = match (knob.default)(&Config::default()).as_str() {
            "none" | "set" | "built in" => unset_sample(knob.flag).to_string(),
            "true" | "false" => "true".to_string(),
            shown if shown.starts_with("http") => "http://127.0.0.1:9".to_string(),
            shown => shown.to_string(),
        };
        let env = |name: &str| (name == knob.env).then(|| value.clone());
        let from_env = parse(args(&[]), env);
        assert_eq!(from_env, parse(args(&[knob.flag, &value]), no_env), "{} / {}", knob.env, knob.flag);
        assert!(from_env.is_ok(), "{}", knob.env);
    }
}

/// A value for a knob whose default is unset.
fn unset_sample(flag: &str) -> &'static str {
    if flag == "--upstream-proxy" { "socks5h://127.0.0.1:1080" } else { "x" }
}

#[test]
fn the_upstream_proxy_is_checked_and_never_echoed() {
    let url = "socks5://alice:hunter2@127.0.0.1:1080";
    let Ok(Command::Serve(config)) = parse(args(&["--upstream-proxy", url]), no_env) else { panic!() };
    let proxy = config.upstream_proxy.clone().unwrap();
    assert_eq!(proxy.shown(), "socks5://127.0.0.1:1080");
    assert_eq!(config.kimi_settings().upstream_proxy, Some(proxy));
    let shown = format!("{config:?} {}", help_text());
    assert!(!shown.contains("hunter2") && !shown.contains("alice"));
    let env = |name: &str| (name == "UPSTREAM_PROXY").then(|| "ftp://alice:hunter2@h:21".to_string());
    let error = parse(args(&[]), env).unwrap_err().to_string();
    assert!(error.starts_with("UPSTREAM_PROXY: unsupported proxy scheme"), "{error}");
    let error =
        parse(args(&["--upstream-proxy", "http://alice:hunter2@h:0"]), no_env).unwrap_err().to_string();
    assert!(error.starts_with("--upstream-proxy: ") && !error.contains("hunter2"), "{error}");
}
