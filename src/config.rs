//! Every knob of the server, with its default, its flag and its environment variable.
//!
//! Flags win over the environment; the environment wins over the defaults. The names are fixed
//! (`docs` and `deploy` use them) because deploy files, benchmarks and users' scripts rely on them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::kimi::{self, RegionChoice, browser};

/// The server's configuration, fully resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// Legacy REST + SSE API (refresh_token era).
    pub kimi_base_url: String,
    /// Connect RPC API (kimi-auth JWT era and 2026 web logins), mainland accounts.
    pub kimi_connect_base_url: String,
    /// The auth host that renews 2026 web logins, mainland accounts.
    pub kimi_auth_base_url: String,
    /// The same two hosts for global (kimi.ai) accounts.
    pub kimi_global_base_url: String,
    pub kimi_global_auth_base_url: String,
    /// Which region's hosts serve the accounts.
    pub kimi_region: RegionChoice,
    /// The web client version sent as `X-Msh-Version` (`docs/kimi-protocol.md` §7.9).
    pub kimi_web_version: String,
    /// The browser User-Agent sent to Kimi; a Chrome one brings its matching client hints.
    pub user_agent: String,
    /// Where rotated logins survive restarts.
    pub state_dir: PathBuf,
    /// A tool prompt template replacing the shipped one.
    pub tool_prompt: Option<PathBuf>,
    /// A merged prompt longer than this (characters) sends its history as an attachment.
    pub max_inline_prompt: usize,
    /// Most requests served at once; a long stream holds one worker for its whole life.
    /// Workers are started on demand up to this bound.
    pub workers: usize,
    /// Requests waiting for a worker before the server answers `503`.
    pub queue_depth: usize,
    /// Longest silence tolerated from Kimi (waiting for headers, or between two reads of a
    /// stream) before the request fails with `504`.
    pub upstream_timeout: Duration,
    /// Largest request body accepted (`413` beyond it).
    pub max_body_bytes: usize,
    /// Whether attachment URLs on loopback and private networks may be fetched (off: the
    /// server would otherwise be a way into the network it runs in).
    pub allow_private_urls: bool,
    /// Longest silence from a client: between two requests on a keep-alive connection, or
    /// inside a request's head (the connection is then closed).
    pub idle_timeout: Duration,
    /// Longest time a request body may take to arrive once its head is in (`408` beyond it).
    pub request_timeout: Duration,
    /// Longest a write to a client may block (a client that stops reading a stream is
    /// dropped, its upstream call stopped and its chat deleted).
    pub write_timeout: Duration,
    /// On SIGTERM or SIGINT, how long running requests may go on before they are ended.
    pub drain_timeout: Duration,
    /// Server-pool mode: the server's own Kimi accounts, one token per line (reloaded on
    /// SIGHUP), or `tokens` from the environment.
    pub tokens_file: Option<PathBuf>,
    pub tokens: Secrets,
    /// The keys callers present in server-pool mode (and that guard `/metrics`).
    pub api_keys: Secrets,
    /// Requests in flight allowed on one Kimi account (Kimi refuses a second generating chat on
    /// one account, `docs/kimi-protocol.md` §7.5).
    pub account_streams: usize,
    /// How long a request waits for an account when every one is busy, before `503`.
    pub account_wait: Duration,
}

/// Tokens or keys: their `Debug` shows how many, never what, so no log or test failure prints
/// them.
#[derive(Clone, Default, PartialEq)]
pub struct Secrets(pub Vec<String>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} hidden)", self.0.len())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "0.0.0.0".into(),
            port: 8000,
            kimi_base_url: "https://kimi.moonshot.cn".into(),
            kimi_connect_base_url: "https://www.kimi.com".into(),
            kimi_auth_base_url: "https://auth.kimi.com".into(),
            kimi_global_base_url: "https://www.kimi.ai".into(),
            kimi_global_auth_base_url: "https://auth.kimi.ai".into(),
            kimi_region: RegionChoice::Auto,
            kimi_web_version: browser::DEFAULT_WEB_VERSION.into(),
            user_agent: browser::DEFAULT_USER_AGENT.into(),
            state_dir: PathBuf::from("./kimi-state"),
            tool_prompt: None,
            max_inline_prompt: 120_000,
            workers: 1024,
            queue_depth: 128,
            upstream_timeout: Duration::from_secs(120),
            max_body_bytes: 32 * 1024 * 1024,
            allow_private_urls: false,
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            tokens_file: None,
            tokens: Secrets::default(),
            api_keys: Secrets::default(),
            account_streams: 1,
            account_wait: Duration::from_secs(10),
        }
    }
}

/// What the command line asked for.
#[derive(Debug, PartialEq)]
pub enum Command {
    Serve(Config),
    /// `doctor [TOKEN]`: one round trip per step against the configured Kimi.
    Doctor {
        config: Config,
        token: Option<String>,
    },
    /// `health [URL]`: probes a running server's `/healthz` (exit 0 when it answers 200).
    Health {
        config: Config,
        url: Option<String>,
    },
    Help,
    Version,
}

/// A flag or environment variable that could not be understood.
#[derive(Debug, PartialEq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// One knob: its flag, its environment variable, a line for `--help`, and how to show its
/// default (read from [`Config::default`], so the help text cannot drift from it).
struct Knob {
    flag: &'static str,
    env: &'static str,
    help: &'static str,
    default: fn(&Config) -> String,
}

const KNOBS: &[Knob] = &[
    Knob { flag: "--host", env: "HOST", help: "address to listen on", default: |c| c.host.clone() },
    Knob { flag: "--port", env: "PORT", help: "port to listen on", default: |c| c.port.to_string() },
    Knob {
        flag: "--kimi-base-url",
        env: "KIMI_BASE_URL",
        help: "legacy Kimi API, for refresh tokens",
        default: |c| c.kimi_base_url.clone(),
    },
    Knob {
        flag: "--kimi-connect-base-url",
        env: "KIMI_CONNECT_BASE_URL",
        help: "Connect RPC Kimi API (2026 logins, kimi-auth), mainland accounts",
        default: |c| c.kimi_connect_base_url.clone(),
    },
    Knob {
        flag: "--kimi-auth-base-url",
        env: "KIMI_AUTH_BASE_URL",
        help: "auth host that renews 2026 web logins",
        default: |c| c.kimi_auth_base_url.clone(),
    },
    Knob {
        flag: "--kimi-global-base-url",
        env: "KIMI_GLOBAL_BASE_URL",
        help: "Connect RPC Kimi API for global (kimi.ai) accounts",
        default: |c| c.kimi_global_base_url.clone(),
    },
    Knob {
        flag: "--kimi-global-auth-base-url",
        env: "KIMI_GLOBAL_AUTH_BASE_URL",
        help: "auth host for global accounts",
        default: |c| c.kimi_global_auth_base_url.clone(),
    },
    Knob {
        flag: "--kimi-region",
        env: "KIMI_REGION",
        help: "cn | global | auto (auto: each token's region claim)",
        default: |c| region_name(c.kimi_region).into(),
    },
    Knob {
        flag: "--kimi-web-version",
        env: "KIMI_WEB_VERSION",
        help: "web client version sent to Kimi as X-Msh-Version",
        default: |c| c.kimi_web_version.clone(),
    },
    Knob {
        flag: "--user-agent",
        env: "USER_AGENT",
        help: "browser User-Agent sent to Kimi (a Chrome one brings its sec-ch-ua hints)",
        default: |c| c.user_agent.clone(),
    },
    Knob {
        flag: "--state-dir",
        env: "STATE_DIR",
        help: "where rotated logins survive restarts (under systemd: $STATE_DIRECTORY)",
        default: |c| c.state_dir.display().to_string(),
    },
    Knob {
        flag: "--workers",
        env: "WORKERS",
        help: "most requests served at once; each open stream holds one",
        default: |c| c.workers.to_string(),
    },
    Knob {
        flag: "--queue",
        env: "QUEUE_DEPTH",
        help: "requests waiting for a worker before 503",
        default: |c| c.queue_depth.to_string(),
    },
    Knob {
        flag: "--upstream-timeout",
        env: "UPSTREAM_TIMEOUT",
        help: "seconds of silence from Kimi before 504",
        default: |c| c.upstream_timeout.as_secs_f64().to_string(),
    },
    Knob {
        flag: "--max-body",
        env: "MAX_BODY_BYTES",
        help: "largest request body in bytes, 413 beyond",
        default: |c| c.max_body_bytes.to_string(),
    },
    Knob {
        flag: "--allow-private-urls",
        env: "ALLOW_PRIVATE_URLS",
        help: "fetch attachment URLs on private/loopback addresses: true|false",
        default: |c| c.allow_private_urls.to_string(),
    },
    Knob {
        flag: "--tool-prompt",
        env: "TOOL_PROMPT",
        help: "file replacing the tool prompt template (see docs/tools.md)",
        default: |c| c.tool_prompt.as_ref().map_or("built in".into(), |p| p.display().to_string()),
    },
    Knob {
        flag: "--max-inline-prompt",
        env: "MAX_INLINE_PROMPT",
        help: "characters of prompt sent inline; a longer history goes as a .txt attachment",
        default: |c| c.max_inline_prompt.to_string(),
    },
    Knob {
        flag: "--idle-timeout",
        env: "IDLE_TIMEOUT",
        help: "seconds a client may stay silent (between requests, inside a head)",
        default: |c| c.idle_timeout.as_secs_f64().to_string(),
    },
    Knob {
        flag: "--request-timeout",
        env: "REQUEST_TIMEOUT",
        help: "seconds for a request body to arrive, 408 beyond",
        default: |c| c.request_timeout.as_secs_f64().to_string(),
    },
    Knob {
        flag: "--write-timeout",
        env: "WRITE_TIMEOUT",
        help: "seconds a write to a client may block before it is dropped",
        default: |c| c.write_timeout.as_secs_f64().to_string(),
    },
    Knob {
        flag: "--drain-timeout",
        env: "DRAIN_TIMEOUT",
        help: "seconds running requests may finish after SIGTERM/SIGINT",
        default: |c| c.drain_timeout.as_secs_f64().to_string(),
    },
    Knob {
        flag: "--tokens-file",
        env: "KIMI_TOKENS_FILE",
        help: "server pool: the server's Kimi tokens, one per line, # comments; SIGHUP reloads",
        default: |c| c.tokens_file.as_ref().map_or_else(|| "none".into(), |p| p.display().to_string()),
    },
    Knob {
        flag: "--tokens",
        env: "KIMI_TOKENS",
        help: "server pool: comma list of Kimi tokens (prefer the env or a file: flags show in ps)",
        default: |c| if c.tokens.0.is_empty() { "none".into() } else { "set".into() },
    },
    Knob {
        flag: "--api-keys",
        env: "API_KEYS",
        help: "comma list of keys callers present in server-pool mode; they also guard /metrics",
        default: |c| if c.api_keys.0.is_empty() { "none".into() } else { "set".into() },
    },
    Knob {
        flag: "--account-streams",
        env: "ACCOUNT_STREAMS",
        help: "requests in flight allowed on one Kimi account (Kimi refuses a second generating chat)",
        default: |c| c.account_streams.to_string(),
    },
    Knob {
        flag: "--account-wait",
        env: "ACCOUNT_WAIT",
        help: "seconds a request waits when every account is busy, then 503",
        default: |c| c.account_wait.as_secs_f64().to_string(),
    },
];

/// What `--help` says of tokens: what a login gives today, and what each kind does.
const TOKENS_HELP: &str = "
Tokens: the caller's API key is the Kimi token (Authorization: Bearer, x-api-key, x-goog-api-key
or ?key=; TOKEN1,TOKEN2 is a pool). Log in at www.kimi.com (or www.kimi.ai), press F12 and copy
refresh_token from Application -> Local Storage. It rotates every time the server renews the
15-minute access token: the newest one is kept in the state directory, which must persist (a
systemd StateDirectory=, a container volume on /data), or you log in again. An access_token
from the same place works for about 15 minutes only (a stopgap). Older kinds still work: a
kimi-auth cookie (sent as it is) and a kimi.moonshot.cn refresh_token (legacy API).

Server pool: with --tokens-file (or KIMI_TOKENS) the server uses its own accounts and callers
present one of --api-keys instead of a token; a pool without keys listens on loopback only.
Accounts are used in turn, at most --account-streams requests each; a rate-limited one cools
down, a refused one is skipped. GET /healthz and GET /metrics show them (by fingerprint).
";

/// The `--help` text.
pub fn help_text() -> String {
    let mut text = String::from(
        "kimi-free-api: your Kimi web-chat account behind the OpenAI, Anthropic and Gemini APIs\n\n\
         usage: kimi-free-api [FLAG VALUE]...              run the server\n\
         \x20      kimi-free-api doctor [TOKEN] [FLAG VALUE]... check a token against Kimi, step by step\n\
         \x20                                                     (TOKEN, else $KIMI_TOKEN)\n\
         \x20      kimi-free-api health [URL] [FLAG VALUE]...   probe /healthz: exit 0 if it answers 200\n\
         \x20                                                     (URL, else http://127.0.0.1:$PORT/healthz)\n\n\
         Every flag has an environment variable of the same meaning; flags win. Defaults in [].\n\n",
    );
    let defaults = Config::default();
    for knob in KNOBS {
        let default = (knob.default)(&defaults);
        text.push_str(&format!("  {:<28} {:<26} {} [{default}]\n", knob.flag, knob.env, knob.help));
    }
    text.push_str(&format!("  {:<55} show this text\n  {:<55} show the version\n", "--help", "--version"));
    text.push_str(TOKENS_HELP);
    text
}

impl Config {
    /// The part of the configuration the Kimi side needs (the server and `doctor` both build
    /// their `Kimi` from it).
    pub fn kimi_settings(&self) -> kimi::Settings {
        kimi::Settings {
            legacy_base_url: self.kimi_base_url.clone(),
            connect_base_url: self.kimi_connect_base_url.clone(),
            auth_base_url: self.kimi_auth_base_url.clone(),
            global_connect_base_url: self.kimi_global_base_url.clone(),
            global_auth_base_url: self.kimi_global_auth_base_url.clone(),
            region: self.kimi_region,
            state_dir: Some(self.state_dir.clone()),
            upstream_timeout: self.upstream_timeout,
            allow_private_urls: self.allow_private_urls,
            account_streams: self.account_streams,
            account_wait: self.account_wait,
            browser: browser::Browser {
                web_version: self.kimi_web_version.clone(),
                user_agent: self.user_agent.clone(),
            },
        }
    }

    fn set(&mut self, flag: &str, value: &str, origin: &str) -> Result<(), ConfigError> {
        let bad = |what: &str| ConfigError(format!("{origin}: {what}, got {value:?}"));
        let url = |value: &str| base_url(value).ok_or_else(|| bad("expected an http(s) URL"));
        let bad_seconds = || bad("expected seconds above 0, at most 86400");
        match flag {
            "--host" => self.host = value.to_string(),
            "--port" => self.port = value.parse().map_err(|_| bad("expected a port number"))?,
            "--kimi-base-url" => self.kimi_base_url = url(value)?,
            "--kimi-connect-base-url" => self.kimi_connect_base_url = url(value)?,
            "--kimi-auth-base-url" => self.kimi_auth_base_url = url(value)?,
            "--kimi-global-base-url" => self.kimi_global_base_url = url(value)?,
            "--kimi-global-auth-base-url" => self.kimi_global_auth_base_url = url(value)?,
            "--kimi-region" => {
                self.kimi_region = match value {
                    "auto" => RegionChoice::Auto,
                    "cn" => RegionChoice::Cn,
                    "global" => RegionChoice::Global,
                    _ => return Err(bad("expected cn, global or auto")),
                }
            }
            "--kimi-web-version" => {
                self.kimi_web_version = header_value(value).ok_or_else(|| bad(NOT_A_HEADER))?
            }
            "--user-agent" => self.user_agent = header_value(value).ok_or_else(|| bad(NOT_A_HEADER))?,
            "--state-dir" => self.state_dir = PathBuf::from(value),
            "--tool-prompt" => self.tool_prompt = Some(PathBuf::from(value)),
            "--max-inline-prompt" => {
                self.max_inline_prompt = positive(value).ok_or_else(|| bad("expected characters above 0"))?
            }
            "--workers" => {
                self.workers = positive(value).ok_or_else(|| bad("expected a whole number above 0"))?
            }
            "--queue" => {
                self.queue_depth = positive(value).ok_or_else(|| bad("expected a whole number above 0"))?
            }
            "--upstream-timeout" => {
                let secs: f64 = value.parse().map_err(|_| bad("expected seconds"))?;
                if !(secs > 0.0 && secs <= 86_400.0) {
                    return Err(bad("expected seconds between 0 and 86400"));
                }
                self.upstream_timeout = Duration::from_secs_f64(secs);
            }
            "--idle-timeout" => self.idle_timeout = seconds(value).ok_or_else(bad_seconds)?,
            "--request-timeout" => self.request_timeout = seconds(value).ok_or_else(bad_seconds)?,
            "--write-timeout" => self.write_timeout = seconds(value).ok_or_else(bad_seconds)?,
            "--drain-timeout" => self.drain_timeout = seconds(value).ok_or_else(bad_seconds)?,
            "--allow-private-urls" => {
                self.allow_private_urls = match value {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => return Err(bad("expected true or false")),
                }
            }
            "--max-body" => {
                self.max_body_bytes = positive(value).ok_or_else(|| bad("expected a byte count above 0"))?
            }
            "--tokens-file" => self.tokens_file = Some(PathBuf::from(value)),
            // Never echo these values: they are secrets.
            "--tokens" => self.tokens = Secrets(list(value)),
            "--api-keys" => self.api_keys = Secrets(list(value)),
            "--account-streams" => {
                self.account_streams =
                    positive(value).ok_or_else(|| bad("expected a whole number above 0"))?
            }
            "--account-wait" => {
                let secs: f64 = value.parse().map_err(|_| bad("expected seconds"))?;
                if !(0.0..=3600.0).contains(&secs) {
                    return Err(bad("expected seconds between 0 and 3600"));
                }
                self.account_wait = Duration::from_secs_f64(secs);
            }
            _ => return Err(ConfigError(format!("unknown flag {flag}; see --help"))),
        }
        Ok(())
    }
}

fn region_name(region: RegionChoice) -> &'static str {
    match region {
        RegionChoice::Auto => "auto",
        RegionChoice::Cn => "cn",
        RegionChoice::Global => "global",
    }
}

/// What a refused header value is told (a CR or LF would smuggle a header of its own).
const NOT_A_HEADER: &str = "expected a non-empty header value without control characters";

/// A value sent as a header as it is: not empty, no control characters.
fn header_value(value: &str) -> Option<String> {
    (!value.trim().is_empty() && !value.chars().any(char::is_control)).then(|| value.to_string())
}

/// Seconds above 0 and at most a day.
fn seconds(value: &str) -> Option<Duration> {
    let secs: f64 = value.parse().ok()?;
    (secs > 0.0 && secs <= 86_400.0).then(|| Duration::from_secs_f64(secs))
}

/// The non-empty items of a comma list.
fn list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_string).collect()
}

fn positive(value: &str) -> Option<usize> {
    value.parse().ok().filter(|n| *n > 0)
}

fn base_url(value: &str) -> Option<String> {
    let trimmed = value.trim_end_matches('/');
    (trimmed.starts_with("http://") || trimmed.starts_with("https://")).then(|| trimmed.to_string())
}

/// Resolves the command line and environment into a [`Command`].
///
/// `env` is a lookup function so that tests need not touch the process environment.
pub fn parse<I, E>(args: I, env: E) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = String>,
    E: Fn(&str) -> Option<String>,
{
    let mut config = Config::default();
    // systemd's `StateDirectory=` says where the state lives (the first of its paths).
    if let Some(dir) = env("STATE_DIRECTORY").and_then(|v| v.split(':').next().map(PathBuf::from)) {
        config.state_dir = dir;
    }
    for knob in KNOBS {
        if let Some(value) = env(knob.env).filter(|v| !v.is_empty()) {
            config.set(knob.flag, &value, knob.env)?;
        }
    }
    let mut args = args.into_iter().peekable();
    let doctor = args.next_if(|arg| arg == "doctor").is_some();
    let health = !doctor && args.next_if(|arg| arg == "health").is_some();
    let mut positional = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            _ if (doctor || health) && !arg.starts_with('-') && positional.is_none() => {
                positional = Some(arg);
                continue;
            }
            _ => {}
        }
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), value.to_string()),
            None if !KNOBS.iter().any(|knob| knob.flag == arg) => {
                return Err(ConfigError(format!("unknown flag {arg}; see --help")));
            }
            None => {
                let value = args.next().ok_or_else(|| ConfigError(format!("{arg} needs a value")))?;
                (arg.clone(), value)
            }
        };
        config.set(&flag, &value, &flag)?;
    }
    if doctor {
        let token = positional.or_else(|| env("KIMI_TOKEN")).filter(|t| !t.is_empty());
        return Ok(Command::Doctor { config, token });
    }
    if health {
        return Ok(Command::Health { config, url: positional });
    }
    Ok(Command::Serve(config))
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn regions_and_doctor() {
        let Ok(Command::Serve(config)) = parse(args(&["--kimi-region", "global"]), no_env) else { panic!() };
        assert_eq!(config.kimi_region, RegionChoice::Global);
        assert!(parse(args(&["--kimi-region", "mars"]), no_env).is_err());
        let Ok(Command::Doctor { token, config }) = parse(args(&["doctor", "tok", "--port", "1"]), no_env)
        else {
            panic!()
        };
        assert_eq!((token.as_deref(), config.port), (Some("tok"), 1));
        let env = |name: &str| (name == "KIMI_TOKEN").then(|| "from-env".to_string());
        let Ok(Command::Doctor { token, .. }) = parse(args(&["doctor"]), env) else { panic!() };
        assert_eq!(token.as_deref(), Some("from-env"));
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
        assert!(
            line.contains("USER_AGENT") && line.ends_with(&format!("[{}]", defaults.user_agent)),
            "{line}"
        );
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
}
