//! `make demo`: the server in front of the mock Kimi, both on free loopback ports, so that the
//! server can be tried without a Kimi account. Prints a token of each kind the mock accepts and
//! commands to paste (a streamed curl chat, the OpenAI Python SDK, Claude Code, the doctor);
//! Ctrl-C (or SIGTERM) stops both and removes the server's state directory. Nothing reaches Kimi.
//!
//! The mock answers like Kimi ([`mock::Script::demo`]): paced pieces, with thinking for the
//! `-thinking` models and citations for the `-search` ones. `tests/sdk/test_demo.py` runs what
//! this prints. The server binary is the one beside this example in `target/` (`make demo`
//! builds both), or `KIMI_FREE_API_BIN`.

#[path = "../tests/support/mock/mod.rs"]
mod mock;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The checkout this example was built from (where `.venv` and the pinned CLIs are, when
/// `make test` has installed them).
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn main() -> ExitCode {
    // Taken first, so that a Ctrl-C during start-up still cleans up.
    let signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("demo: cannot handle SIGINT and SIGTERM: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mock = mock::MockKimi::start();
    mock.script(mock::Script::demo());
    let state = std::env::temp_dir().join(format!("kimi-free-api-demo-{}", std::process::id()));
    let server_bin = server_binary();
    let started = start_server(&server_bin, &mock, &state);
    let (mut server, url) = match started {
        Ok(started) => started,
        Err(why) => {
            eprintln!("demo: the server did not start: {why}");
            let _ = std::fs::remove_dir_all(&state);
            return ExitCode::FAILURE;
        }
    };
    print!("{}", guide(&url, mock.url(), &server_bin));
    let _ = std::io::stdout().flush();
    let code = wait(&mut server, signals);
    stop(&mut server);
    let _ = std::fs::remove_dir_all(&state);
    eprintln!("demo: stopped the server and the mock Kimi");
    code
}

/// The server binary: `KIMI_FREE_API_BIN`, else the one `cargo build` put beside this example.
fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KIMI_FREE_API_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap_or(Path::new("target/debug"));
    profile_dir.join("kimi-free-api")
}

/// Starts the server on a free loopback port with every Kimi host at the mock; returns once it
/// says where it listens (at most 10 s), with its base URL. Its log then goes to our stderr.
fn start_server(bin: &Path, mock: &mock::MockKimi, state: &Path) -> Result<(Child, String), String> {
    let mut command = Command::new(bin);
    command.args(["--host", "127.0.0.1", "--port", "0"]).args(mock::host_flags(mock.url()));
    command.arg("--state-dir").arg(state);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e} (run `make demo`, which builds it)", bin.display()))?;
    let stderr = child.stderr.take().expect("piped");
    let (found, listening) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some((_, addr)) = line.rsplit_once("listening on ") {
                let _ = found.send(addr.trim().to_string());
                break;
            }
            eprintln!("{line}");
        }
        drop(found);
        for line in lines.map_while(Result::ok) {
            eprintln!("{line}");
        }
    });
    match listening.recv_timeout(Duration::from_secs(10)) {
        Ok(url) => Ok((child, url)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err("it did not say where it listens within 10 s".into())
        }
    }
}

/// Waits for SIGINT or SIGTERM (success) or for the server to end on its own (failure).
fn wait(server: &mut Child, mut signals: Signals) -> ExitCode {
    let (signalled, got) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        if signals.forever().next().is_some() {
            let _ = signalled.send(());
        }
    });
    loop {
        if got.recv_timeout(Duration::from_millis(200)).is_ok() {
            return ExitCode::SUCCESS;
        }
        if let Ok(Some(status)) = server.try_wait() {
            eprintln!("demo: the server ended on its own ({status})");
            return ExitCode::FAILURE;
        }
    }
}

/// Stops the server: SIGTERM (it drains: an idle server exits at once), then a kill after 5 s.
fn stop(server: &mut Child) {
    let _ = Command::new("kill").args(["-s", "TERM", &server.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = server.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// One token of each kind the mock accepts: the name, what it is, the token.
fn tokens() -> [(&'static str, String, String); 4] {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let identity = json!({"sub": "demo-user", "ssid": "ss-demo-user", "device_id": "7000000000000072913"});
    let mut refresh = json!({"iss": "account-nt", "typ": "refresh", "app_id": "kimi", "region": "cn",
        "iat": now, "exp": now + 90 * 86_400});
    let mut access = json!({"iss": "account-nt", "typ": "access", "sub": "demo-access", "ssid": "ss-demo-access",
        "iat": now, "exp": now + 15 * 60});
    for (name, value) in identity.as_object().into_iter().flatten() {
        refresh[name] = value.clone();
    }
    let cookie = json!({"iss": "user-center", "typ": "access", "app_id": "kimi", "sub": "demo-cookie",
        "ssid": "1731086499958639802", "device_id": "7651804114103329291", "region": "cn",
        "iat": now, "exp": now + 30 * 86_400});
    access["region"] = json!("cn");
    let until = kimi_free_api::kimi::utc(now + 15 * 60);
    [
        (
            "2026 web refresh_token",
            "what a login gives today; it rotates, the server keeps the newest".into(),
            mock::mint_jwt(&refresh),
        ),
        (
            "2026 web access_token",
            format!("works until {until}, as Kimi's last 15 minutes"),
            mock::mint_jwt(&access),
        ),
        ("kimi-auth cookie", "an older login".into(), mock::mint_jwt(&cookie)),
        ("legacy refresh_token", "kimi.moonshot.cn".into(), format!("rt-demo-{now}")),
    ]
}

/// What the demo prints: the tokens and the commands to paste, each command block under a
/// `# ` line (`tests/sdk/test_demo.py` finds them so).
fn guide(url: &str, mock_url: &str, server_bin: &Path) -> String {
    let tokens = tokens();
    let token = &tokens[0].2;
    let mut out = format!(
        "kimi-free-api demo: the server {url} in front of a mock Kimi ({mock_url}).\n\
         Nothing leaves this machine. The mock answers like Kimi: thinking for -thinking models,\n\
         citations for -search ones. The commands below use the first token; any token works.\n\n\
         Tokens the mock accepts, one of each kind:\n"
    );
    for (kind, about, token) in &tokens {
        out.push_str(&format!("  {kind} ({about}):\n    {token}\n"));
    }
    let body = r#"{"model": "kimi-thinking-search", "stream": true, "messages": [{"role": "user", "content": "Hello"}]}"#;
    out.push_str(&format!(
        "\n# A streamed chat with curl (kimi-thinking-search: reasoning_content, then citations and the answer)\n\
         curl -N {url}/v1/chat/completions -H \"Authorization: Bearer {token}\" \\\n  \
         -H \"Content-Type: application/json\" -d '{body}'\n"
    ));
    let venv = Path::new(ROOT).join(".venv/bin/python");
    let (python, needs) = if venv.exists() {
        (shell_word(&venv), "from `make test`'s .venv")
    } else {
        ("python3".to_string(), "pip install openai")
    };
    out.push_str(&format!(
        "\n# The OpenAI Python SDK ({needs})\n\
         {python} - <<'EOF'\n\
         from openai import OpenAI\n\
         client = OpenAI(base_url=\"{url}/v1\", api_key=\"{token}\")\n\
         for chunk in client.chat.completions.create(model=\"kimi-search\", stream=True,\n        \
         messages=[{{\"role\": \"user\", \"content\": \"What is new in Rust?\"}}]):\n    \
         if chunk.choices:\n        \
         print(chunk.choices[0].delta.content or \"\", end=\"\", flush=True)\n\
         print()\n\
         EOF\n"
    ));
    let pinned = Path::new(ROOT).join("tests/cli/node_modules/.bin/claude");
    let (claude, needs) = if pinned.exists() {
        (shell_word(&pinned), "pinned by `make test`")
    } else {
        ("claude".to_string(), "npm install -g @anthropic-ai/claude-code")
    };
    out.push_str(&format!(
        "\n# Claude Code ({needs})\n\
         ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY={token} DISABLE_TELEMETRY=1 \\\n  \
         CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 {claude} -p \"say hi\"\n"
    ));
    out.push_str(&format!(
        "\n# The doctor: the server checks the token step by step with its own login\n\
         {} doctor --server {url} --api-key {token}\n\n\
         Ready. The server's log follows; Ctrl-C stops both.\n",
        shell_word(server_bin)
    ));
    out
}

/// A path as one shell word: as it is when it is plain, else single-quoted.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c));
    if plain { text } else { format!("'{}'", text.replace('\'', r"'\''")) }
}
