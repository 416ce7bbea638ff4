//! Every knob of the server, with its default, its flag and its environment variable.
//!
//! Flags win over the environment; the environment wins over the defaults. The names are fixed
//! (`docs` and `deploy` use them) because deploy files, benchmarks and users' scripts rely on them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::kimi::{self, RegionChoice, ToolMode, UpstreamProxy, browser};

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
    /// How tools are offered to Kimi's model: declared natively, in the user's turn, or per
    /// account as it turns out to work (`docs/tools.md` §3).
    pub tool_mode: ToolMode,
    /// A tool prompt template replacing the shipped one (the user's turn).
    pub tool_prompt: Option<PathBuf>,
    /// The same for the system prompt field (native tools).
    pub native_tool_prompt: Option<PathBuf>,
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
    /// Longest time a request's head and body may take to arrive, from its first byte (`408`
    /// beyond it; the time a request waits for a worker is not counted).
    pub request_timeout: Duration,
    /// Largest request head (request line and headers): `431` beyond it, and the connection
    /// closed; no more than this is held while a head is read.
    pub max_header_bytes: usize,
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
    /// Least time between two request starts on one account, jittered by ±20 % (zero: off).
    pub account_min_interval: Duration,
    /// Agent sessions kept on one Kimi chat each at most (0: off, every request a new chat).
    pub sessions: usize,
    /// Answers one session's chat gives before a fresh chat takes over.
    pub session_max_turns: u32,
    /// How long an unused session's chat is kept before it is deleted from Kimi.
    pub session_idle: Duration,
    /// The proxy of every call to Kimi's hosts, unless an account's line in the tokens file
    /// names its own; its `Debug` shows no credentials.
    pub upstream_proxy: Option<UpstreamProxy>,
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
            tool_mode: ToolMode::Auto,
            tool_prompt: None,
            native_tool_prompt: None,
            max_inline_prompt: 120_000,
            workers: 1024,
            queue_depth: 128,
            upstream_timeout: Duration::from_secs(120),
            max_body_bytes: 32 * 1024 * 1024,
            allow_private_urls: false,
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            write_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            tokens_file: None,
            tokens: Secrets::default(),
            api_keys: Secrets::default(),
            account_streams: 1,
            account_wait: Duration::from_secs(10),
            account_min_interval: Duration::ZERO,
            sessions: 64,
            session_max_turns: 50,
            session_idle: Duration::from_secs(600),
            upstream_proxy: None,
        }
    }
}

/// What the command line asked for.
#[derive(Debug, PartialEq)]
pub enum Command {
    Serve(Config),
    /// `doctor [TOKEN]`: one round trip per step against the configured Kimi, or, with
    /// `--server`, the same steps run by a running server with its own login.
    Doctor {
        config: Config,
        args: DoctorArgs,
    },
    /// `health [URL]`: probes a running server's `/healthz` (exit 0 when it answers 200).
    Health {
        config: Config,
        url: Option<String>,
    },
    Help,
    Version,
}

/// What `doctor` was given besides the server's flags.
#[derive(Debug, Default, PartialEq)]
pub struct DoctorArgs {
    /// TOKEN, else `$KIMI_TOKEN`.
    pub token: Option<String>,
    /// `--rotate`: log in with a 2026 refresh token whose newest rotation the state directory
    /// does not hold (whoever else uses that login is then logged out).
    pub rotate: bool,
    /// `--server URL`: ask that server to run the steps with its own accounts.
    pub server: Option<String>,
    /// `--api-key KEY`: what to present to `--server` (else the token, in pass-through mode).
    pub api_key: Option<String>,
}

impl DoctorArgs {
    /// Takes `arg` (and its value from `rest`) if it is one of the doctor's own flags.
    fn take<I: Iterator<Item = String>>(&mut self, arg: &str, rest: &mut I) -> Result<bool, ConfigError> {
        let (flag, inline) = arg.split_once('=').map_or((arg, None), |(f, v)| (f, Some(v.to_string())));
        let mut value = || inline.clone().or_else(|| rest.next()).ok_or(format!("{flag} needs a value"));
        match flag {
            "--rotate" if inline.is_none() => self.rotate = true,
            "--server" => {
                let given = value().map_err(ConfigError)?;
                let mut server = String::new();
                url(&mut server, &given)
                    .map_err(|what| ConfigError(format!("--server: {what}, got {given:?}")))?;
                self.server = Some(server);
            }
            "--api-key" => self.api_key = Some(value().map_err(ConfigError)?),
            _ => return Ok(false),
        }
        Ok(true)
    }
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

/// One knob, written once: its flag, its environment variable, a line for `--help`, how to show
/// its default (read from [`Config::default`], so the help text cannot drift from it) and how
/// to set it from a value (what a refused value is told is the error).
struct Knob {
    flag: &'static str,
    env: &'static str,
    help: &'static str,
    default: fn(&Config) -> String,
    set: fn(&mut Config, &str) -> Result<(), &'static str>,
}

const KNOBS: &[Knob] = &[
    Knob {
        flag: "--host",
        env: "HOST",
        help: "address to listen on",
        default: |c| c.host.clone(),
        set: |c, v| text(&mut c.host, v),
    },
    Knob {
        flag: "--port",
        env: "PORT",
        help: "port to listen on",
        default: |c| c.port.to_string(),
        set: |c, v| parsed(&mut c.port, v, "expected a port number"),
    },
    Knob {
        flag: "--kimi-base-url",
        env: "KIMI_BASE_URL",
        help: "legacy Kimi API, for refresh tokens",
        default: |c| c.kimi_base_url.clone(),
        set: |c, v| url(&mut c.kimi_base_url, v),
    },
    Knob {
        flag: "--kimi-connect-base-url",
        env: "KIMI_CONNECT_BASE_URL",
        help: "Connect RPC Kimi API (2026 logins, kimi-auth), mainland accounts",
        default: |c| c.kimi_connect_base_url.clone(),
        set: |c, v| url(&mut c.kimi_connect_base_url, v),
    },
    Knob {
        flag: "--kimi-auth-base-url",
        env: "KIMI_AUTH_BASE_URL",
        help: "auth host that renews 2026 web logins",
        default: |c| c.kimi_auth_base_url.clone(),
        set: |c, v| url(&mut c.kimi_auth_base_url, v),
    },
    Knob {
        flag: "--kimi-global-base-url",
        env: "KIMI_GLOBAL_BASE_URL",
        help: "Connect RPC Kimi API for global (kimi.ai) accounts",
        default: |c| c.kimi_global_base_url.clone(),
        set: |c, v| url(&mut c.kimi_global_base_url, v),
    },
    Knob {
        flag: "--kimi-global-auth-base-url",
        env: "KIMI_GLOBAL_AUTH_BASE_URL",
        help: "auth host for global accounts",
        default: |c| c.kimi_global_auth_base_url.clone(),
        set: |c, v| url(&mut c.kimi_global_auth_base_url, v),
    },
    Knob {
        flag: "--kimi-region",
        env: "KIMI_REGION",
        help: "cn | global | auto (auto: each token's region claim)",
        default: |c| region_name(c.kimi_region).into(),
        set: |c, v| {
            c.kimi_region = match v {
                "auto" => RegionChoice::Auto,
                "cn" => RegionChoice::Cn,
                "global" => RegionChoice::Global,
                _ => return Err("expected cn, global or auto"),
            };
            Ok(())
        },
    },
    Knob {
        flag: "--kimi-web-version",
        env: "KIMI_WEB_VERSION",
        help: "web client version sent to Kimi as X-Msh-Version",
        default: |c| c.kimi_web_version.clone(),
        set: |c, v| header(&mut c.kimi_web_version, v),
    },
    Knob {
        flag: "--user-agent",
        env: "USER_AGENT",
        help: "browser User-Agent sent to Kimi (a Chrome one brings its sec-ch-ua hints)",
        default: |c| c.user_agent.clone(),
        set: |c, v| header(&mut c.user_agent, v),
    },
    Knob {
        flag: "--state-dir",
        env: "STATE_DIR",
        help: "where rotated logins survive restarts (under systemd: $STATE_DIRECTORY)",
        default: |c| c.state_dir.display().to_string(),
        set: |c, v| path(&mut c.state_dir, v),
    },
    Knob {
        flag: "--workers",
        env: "WORKERS",
        help: "most requests served at once; each open stream holds one",
        default: |c| c.workers.to_string(),
        set: |c, v| positive(&mut c.workers, v, "expected a whole number above 0"),
    },
    Knob {
        flag: "--queue",
        env: "QUEUE_DEPTH",
        help: "requests waiting for a worker before 503",
        default: |c| c.queue_depth.to_string(),
        set: |c, v| positive(&mut c.queue_depth, v, "expected a whole number above 0"),
    },
    Knob {
        flag: "--upstream-timeout",
        env: "UPSTREAM_TIMEOUT",
        help: "seconds of silence from Kimi before 504",
        default: |c| c.upstream_timeout.as_secs_f64().to_string(),
        set: |c, v| {
            let secs: f64 = v.parse().map_err(|_| "expected seconds")?;
            if !(secs > 0.0 && secs <= 86_400.0) {
                return Err("expected seconds between 0 and 86400");
            }
            c.upstream_timeout = Duration::from_secs_f64(secs);
            Ok(())
        },
    },
    Knob {
        flag: "--max-body",
        env: "MAX_BODY_BYTES",
        help: "largest request body in bytes, 413 beyond",
        default: |c| c.max_body_bytes.to_string(),
        set: |c, v| positive(&mut c.max_body_bytes, v, "expected a byte count above 0"),
    },
    Knob {
        flag: "--allow-private-urls",
        env: "ALLOW_PRIVATE_URLS",
        help: "fetch attachment URLs on private/loopback addresses: true|false",
        default: |c| c.allow_private_urls.to_string(),
        set: |c, v| {
            c.allow_private_urls = match v {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err("expected true or false"),
            };
            Ok(())
        },
    },
    Knob {
        flag: "--tool-mode",
        env: "TOOL_MODE",
        help: "how tools reach Kimi's model: native|prompt|auto (see docs/tools.md)",
        default: |c| c.tool_mode.name().into(),
        set: |c, v| {
            c.tool_mode = ToolMode::parse(v).ok_or("expected native, prompt or auto")?;
            Ok(())
        },
    },
    Knob {
        flag: "--tool-prompt",
        env: "TOOL_PROMPT",
        help: "file replacing the tool prompt template (see docs/tools.md)",
        default: |c| c.tool_prompt.as_ref().map_or("built in".into(), |p| p.display().to_string()),
        set: |c, v| path(c.tool_prompt.insert(PathBuf::new()), v),
    },
    Knob {
        flag: "--native-tool-prompt",
        env: "NATIVE_TOOL_PROMPT",
        help: "file replacing the tool template of Kimi's system prompt field (native mode)",
        default: |c| c.native_tool_prompt.as_ref().map_or("built in".into(), |p| p.display().to_string()),
        set: |c, v| path(c.native_tool_prompt.insert(PathBuf::new()), v),
    },
    Knob {
        flag: "--max-inline-prompt",
        env: "MAX_INLINE_PROMPT",
        help: "characters of prompt sent inline; a longer history goes as a .txt attachment",
        default: |c| c.max_inline_prompt.to_string(),
        set: |c, v| positive(&mut c.max_inline_prompt, v, "expected characters above 0"),
    },
    Knob {
        flag: "--idle-timeout",
        env: "IDLE_TIMEOUT",
        help: "seconds a client may stay silent (between requests, inside a head)",
        default: |c| c.idle_timeout.as_secs_f64().to_string(),
        set: |c, v| seconds(&mut c.idle_timeout, v),
    },
    Knob {
        flag: "--request-timeout",
        env: "REQUEST_TIMEOUT",
        help: "seconds for a request's head and body to arrive from its first byte, 408 beyond",
        default: |c| c.request_timeout.as_secs_f64().to_string(),
        set: |c, v| seconds(&mut c.request_timeout, v),
    },
    Knob {
        flag: "--max-header-bytes",
        env: "MAX_HEADER_BYTES",
        help: "largest request head (request line and headers) in bytes, 431 beyond",
        default: |c| c.max_header_bytes.to_string(),
        set: |c, v| positive(&mut c.max_header_bytes, v, "expected a byte count above 0"),
    },
    Knob {
        flag: "--write-timeout",
        env: "WRITE_TIMEOUT",
        help: "seconds a write to a client may block before it is dropped",
        default: |c| c.write_timeout.as_secs_f64().to_string(),
        set: |c, v| seconds(&mut c.write_timeout, v),
    },
    Knob {
        flag: "--drain-timeout",
        env: "DRAIN_TIMEOUT",
        help: "seconds running requests may finish after SIGTERM/SIGINT",
        default: |c| c.drain_timeout.as_secs_f64().to_string(),
        set: |c, v| seconds(&mut c.drain_timeout, v),
    },
    Knob {
        flag: "--tokens-file",
        env: "KIMI_TOKENS_FILE",
        help: "server pool: the server's Kimi tokens, one per line, # comments; SIGHUP reloads",
        default: |c| c.tokens_file.as_ref().map_or_else(|| "none".into(), |p| p.display().to_string()),
        set: |c, v| path(c.tokens_file.insert(PathBuf::new()), v),
    },
    // Never echo these two values: they are secrets.
    Knob {
        flag: "--tokens",
        env: "KIMI_TOKENS",
        help: "server pool: comma list of Kimi tokens (prefer the env or a file: flags show in ps)",
        default: |c| if c.tokens.0.is_empty() { "none".into() } else { "set".into() },
        set: |c, v| secrets(&mut c.tokens, v),
    },
    Knob {
        flag: "--api-keys",
        env: "API_KEYS",
        help: "comma list of keys callers present in server-pool mode; they also guard /metrics",
        default: |c| if c.api_keys.0.is_empty() { "none".into() } else { "set".into() },
        set: |c, v| secrets(&mut c.api_keys, v),
    },
    Knob {
        flag: "--account-streams",
        env: "ACCOUNT_STREAMS",
        help: "requests in flight allowed on one Kimi account (Kimi refuses a second generating chat)",
        default: |c| c.account_streams.to_string(),
        set: |c, v| positive(&mut c.account_streams, v, "expected a whole number above 0"),
    },
    Knob {
        flag: "--account-wait",
        env: "ACCOUNT_WAIT",
        help: "seconds a request waits when every account is busy, then 503",
        default: |c| c.account_wait.as_secs_f64().to_string(),
        set: |c, v| seconds_within_an_hour(&mut c.account_wait, v),
    },
    Knob {
        flag: "--account-min-interval",
        env: "ACCOUNT_MIN_INTERVAL",
        help: "least seconds between request starts on one account, ±20% jitter; 0 is off",
        default: |c| c.account_min_interval.as_secs_f64().to_string(),
        set: |c, v| seconds_within_an_hour(&mut c.account_min_interval, v),
    },
    Knob {
        flag: "--sessions",
        env: "SESSIONS",
        help: "agent sessions kept on one Kimi chat each, sent only what is new; 0 is off",
        default: |c| c.sessions.to_string(),
        set: |c, v| {
            c.sessions = v.parse().map_err(|_| "expected a whole number (0 turns sessions off)")?;
            Ok(())
        },
    },
    Knob {
        flag: "--session-max-turns",
        env: "SESSION_MAX_TURNS",
        help: "answers one session's chat gives before a fresh chat takes over",
        default: |c| c.session_max_turns.to_string(),
        set: |c, v| {
            c.session_max_turns =
                v.parse().ok().filter(|n| *n > 0).ok_or("expected a whole number above 0")?;
            Ok(())
        },
    },
    Knob {
        flag: "--session-idle",
        env: "SESSION_IDLE",
        help: "seconds an unused session's chat is kept, then deleted from Kimi",
        default: |c| c.session_idle.as_secs_f64().to_string(),
        set: |c, v| seconds(&mut c.session_idle, v),
    },
    // Never echoed when refused: it may hold a password.
    Knob {
        flag: UPSTREAM_PROXY,
        env: "UPSTREAM_PROXY",
        help: "proxy for every call to Kimi: http|https|socks5|socks5h://[user:pass@]host:port",
        default: |c| c.upstream_proxy.as_ref().map_or_else(|| "none".into(), |p| p.shown().to_string()),
        set: |c, v| {
            c.upstream_proxy = Some(UpstreamProxy::parse(v)?);
            Ok(())
        },
    },
];

/// The flag whose refused value is not repeated in the error (a proxy URL may hold a password).
const UPSTREAM_PROXY: &str = "--upstream-proxy";

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
A line of the tokens file may name its account's own proxy: TOKEN proxy=URL.
Accounts are used in turn, at most --account-streams requests each; a rate-limited one cools
down, a refused one is skipped. GET /healthz and GET /metrics show them (by fingerprint).
";

/// The `--help` text.
pub fn help_text() -> String {
    let mut text = String::from(
        "kimi-free-api: your Kimi web-chat account behind the OpenAI, Anthropic and Gemini APIs\n\n\
         usage: kimi-free-api [FLAG VALUE]...              run the server\n\
         \x20      kimi-free-api doctor [TOKEN] [--rotate] [FLAG VALUE]...\n\
         \x20                                                     check a token against Kimi, step by step\n\
         \x20                                                     (TOKEN, else $KIMI_TOKEN), with the server's\n\
         \x20                                                     state directory; --rotate: log in even with\n\
         \x20                                                     a 2026 refresh_token whose newest rotation\n\
         \x20                                                     is not there (its other users are logged out)\n\
         \x20      kimi-free-api doctor --server URL [--api-key KEY]\n\
         \x20                                                     the same steps, run by that server with its\n\
         \x20                                                     own login (KEY: one of its API keys; in\n\
         \x20                                                     pass-through mode, the token)\n\
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
            account_min_interval: self.account_min_interval,
            tool_mode: self.tool_mode,
            browser: browser::Browser {
                web_version: self.kimi_web_version.clone(),
                user_agent: self.user_agent.clone(),
            },
            upstream_proxy: self.upstream_proxy.clone(),
        }
    }

    /// Sets the knob of `flag` from `value`; `origin` (the flag or the environment variable)
    /// names it in the error.
    fn set(&mut self, flag: &str, value: &str, origin: &str) -> Result<(), ConfigError> {
        let knob = KNOBS
            .iter()
            .find(|knob| knob.flag == flag)
            .ok_or_else(|| ConfigError(format!("unknown flag {flag}; see --help")))?;
        (knob.set)(self, value).map_err(|what| match knob.flag {
            UPSTREAM_PROXY => ConfigError(format!("{origin}: {what}")),
            _ => ConfigError(format!("{origin}: {what}, got {value:?}")),
        })
    }
}

/// Seconds from 0 to 3600, fractions allowed (the account knobs).
fn seconds_within_an_hour(target: &mut Duration, value: &str) -> Result<(), Refused> {
    let secs: f64 = value.parse().map_err(|_| "expected seconds")?;
    if !(0.0..=3600.0).contains(&secs) {
        return Err("expected seconds between 0 and 3600");
    }
    *target = Duration::from_secs_f64(secs);
    Ok(())
}

fn region_name(region: RegionChoice) -> &'static str {
    match region {
        RegionChoice::Auto => "auto",
        RegionChoice::Cn => "cn",
        RegionChoice::Global => "global",
    }
}

/// What a knob's setter says of a value it refuses.
type Refused = &'static str;

fn text(field: &mut String, value: &str) -> Result<(), Refused> {
    *field = value.to_string();
    Ok(())
}

fn path(field: &mut PathBuf, value: &str) -> Result<(), Refused> {
    *field = PathBuf::from(value);
    Ok(())
}

fn parsed<T: std::str::FromStr>(field: &mut T, value: &str, what: Refused) -> Result<(), Refused> {
    *field = value.parse().map_err(|_| what)?;
    Ok(())
}

/// A whole number above 0.
fn positive(field: &mut usize, value: &str, what: Refused) -> Result<(), Refused> {
    *field = value.parse().ok().filter(|n| *n > 0).ok_or(what)?;
    Ok(())
}

/// Seconds above 0 and at most a day.
fn seconds(field: &mut Duration, value: &str) -> Result<(), Refused> {
    let secs: f64 = value.parse().map_err(|_| "expected seconds above 0, at most 86400")?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err("expected seconds above 0, at most 86400");
    }
    *field = Duration::from_secs_f64(secs);
    Ok(())
}

/// An http(s) base URL, without its trailing slashes.
fn url(field: &mut String, value: &str) -> Result<(), Refused> {
    let trimmed = value.trim_end_matches('/');
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
        return Err("expected an http(s) URL");
    }
    *field = trimmed.to_string();
    Ok(())
}

/// A value sent as a header as it is: not empty, no control characters (a CR or LF would
/// smuggle a header of its own).
fn header(field: &mut String, value: &str) -> Result<(), Refused> {
    if value.trim().is_empty() || value.chars().any(char::is_control) {
        return Err("expected a non-empty header value without control characters");
    }
    *field = value.to_string();
    Ok(())
}

/// The non-empty items of a comma list.
fn secrets(field: &mut Secrets, value: &str) -> Result<(), Refused> {
    *field = Secrets(
        value.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_string).collect(),
    );
    Ok(())
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
    let mut doctor_args = DoctorArgs::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            _ if (doctor || health) && !arg.starts_with('-') && positional.is_none() => {
                positional = Some(arg);
                continue;
            }
            _ if doctor && doctor_args.take(&arg, &mut args)? => continue,
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
        doctor_args.token = positional.or_else(|| env("KIMI_TOKEN")).filter(|t| !t.is_empty());
        return Ok(Command::Doctor { config, args: doctor_args });
    }
    if health {
        return Ok(Command::Health { config, url: positional });
    }
    Ok(Command::Serve(config))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
