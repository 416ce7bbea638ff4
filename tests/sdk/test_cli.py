"""Claude Code, Gemini CLI and Codex CLI (pinned in tests/cli/package.json) against the server: a one-shot
prompt prints the answer with one request and no fallback, and an agent loop runs a real tool
of the CLI's (the server's emulated tool calling, docs/tools.md) and prints the answer.

Every test runs with a 2026 web refresh token (the `kimi` fixture's first kind). The CLIs are
the slowest tests of the suite, so the two older token kinds run only for each CLI's plain
answer; the overload and tool loop tests run with the web token alone (the retries and the
message are Claude Code's own, the server's 529 for every token kind is covered by
test_anthropic_sdk.py, and tool calling for every token kind by the SDK tests).

Each tool loop runs in both tool modes (docs/tools.md §3): `native`, the default on the
Connect API, where the tools are declared to Kimi and the mock answers in the
`<function_calls>` form Kimi's model was seen using, and `prompt`, a server started with
`--tool-mode prompt`, where the tools are in the user's turn and the mock answers in the
server's own grammar. Both servers run with agent sessions on (the default, README "Agent
sessions"): a loop's second request starts a session, and a third continues its Kimi chat with
the newest tool result alone.

A tool loop is scripted in two parts: the mock's `text` is the model's call of the CLI's tool,
which the first request gets; the tool's output carries a `MOCK-REPLY: ...` line, so the
second request (whose prompt holds that output as a <tool_result>) is answered with the rest
of that line instead. Nothing depends on the mock's global completion count."""

import json
import os
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT
from helpers import call_markup, overloaded_fault, settled

BIN = ROOT / "tests/cli/node_modules/.bin"


def requests_since(stack, mark, needle, expected=1):
    """The server's log lines for `needle` after `mark` (bounded wait for the log to drain until
    there are `expected` of them)."""
    deadline = time.monotonic() + 2
    while True:
        lines = [line for line in stack.log[mark:] if needle in line]
        if len(lines) >= expected or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def run(command, env, cwd):
    base = {"HOME": str(cwd), "PATH": os.environ["PATH"], "TMPDIR": str(cwd)}
    return subprocess.run(command, env={**base, **env}, cwd=cwd, capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)


def claude(stack, cwd, *args, **env):
    settings = {"ANTHROPIC_BASE_URL": stack.url, "ANTHROPIC_API_KEY": stack.token, "DISABLE_TELEMETRY": "1",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}
    return run([str(BIN / "claude"), *args], {**settings, **env}, cwd)


def test_claude_code_prints_the_answer_with_one_request(kimi, tmp_path):
    mark = len(kimi.log)
    result = claude(kimi, tmp_path, "-p", "say hi")
    assert result.returncode == 0, result.stderr
    assert "Hello from the mock Kimi." in result.stdout
    requests = requests_since(kimi, mark, "/v1/messages")
    assert len(requests) == 1 and " 200 " in requests[0], requests


@pytest.mark.parametrize("kimi", ["web"], indirect=True)
def test_claude_code_reports_overload_without_auth_loops(kimi, tmp_path):
    kimi.script(fault=overloaded_fault(kimi.kind))
    mark = len(kimi.log)
    result = claude(kimi, tmp_path, "-p", "say hi", CLAUDE_CODE_MAX_RETRIES="1")
    assert result.returncode != 0
    assert "overloaded" in (result.stdout + result.stderr).lower()
    requests = requests_since(kimi, mark, "/v1/messages")
    assert requests and all(" 529 " in line for line in requests), requests


@pytest.fixture(scope="module", autouse=True)
def _sessions_deleted(stack):
    """The loops' servers keep agent sessions on the shared mock: stopped cleanly after this
    module, they delete every session's chat, so later suites find no chat left behind."""
    yield
    for name in ("session_server", "prompt_server"):
        server = getattr(stack, name, None)
        if server is not None:
            server.terminate()
            stack.servers.remove(server)
            delattr(stack, name)
    assert settled(stack)["live_chats"] == [], "a clean stop deletes the sessions' chats"


@pytest.fixture(params=["native", "prompt"])
def mode(kimi, request, tmp_path_factory):
    """The stack as a CLI sees it in one tool mode: its URL, log, token and mock, and the call
    form the mock answers in (`kimi` itself for native, a server of its own for prompt)."""
    if request.param == "native":
        if not hasattr(kimi, "session_server"):
            kimi.session_server = kimi.start_server(tmp_path_factory.mktemp("native") / "state")
        server, form = kimi.session_server, "function_calls"
    else:
        if not hasattr(kimi, "prompt_server"):
            kimi.prompt_server = kimi.start_server(tmp_path_factory.mktemp("prompt") / "state", "--tool-mode", "prompt")
        server, form = kimi.prompt_server, "tool_calls"
    return SimpleNamespace(url=server.url, log=server.log, token=kimi.token, kind=kimi.kind, script=kimi.script,
                           stats=kimi.stats, form=form, mode=request.param)


def declared(stack, name):
    """Whether the last chat declared `name` as a device tool (native) or showed it in the turn
    (prompt), and nothing of the other."""
    stats = stack.stats()
    body = stats.get("last_completion") or {}
    devices = [t.get("name") for t in body.get("tools", []) if t.get("type") == "TOOL_TYPE_DEVICE_TOOL"]
    section = f"## {name}\n"
    if stack.mode == "native":
        return name in devices and section in body["options"]["systemPrompt"] and section not in stats["last_prompt"]
    return not devices and section in stats["last_prompt"]


SECRET_QUESTION = "Read notes.txt and tell me the secret word"
SECRET = "The secret word is PAPAYA."


def notes(cwd):
    """A notes.txt in the CLI's working directory whose content scripts the final answer."""
    path = cwd / "notes.txt"
    path.write_text(f"MOCK-REPLY: {SECRET}\n")
    return path


@pytest.mark.parametrize("kimi", ["web"], indirect=True)
def test_claude_code_reads_a_file_with_its_read_tool(mode, tmp_path):
    """Claude Code gets the model's `Read` call as a tool_use block, reads notes.txt itself (a
    read-only tool: no permission needed in -p mode) and sends its content back as a
    tool_result: two requests, then the answer."""
    mode.script(text=[call_markup("Read", form=mode.form, file_path=str(notes(tmp_path)))])
    mark = len(mode.log)
    result = claude(mode, tmp_path, "-p", SECRET_QUESTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == SECRET, result.stdout
    prompt = mode.stats()["last_prompt"]
    assert '<tool_result name="Read"' in prompt, prompt[-2000:]
    assert 'error="true"' not in prompt[prompt.rfind("<tool_result"):], prompt[-2000:]
    requests = requests_since(mode, mark, "/v1/messages", expected=2)
    assert len(requests) == 2 and all(" 200 " in line for line in requests), requests
    assert declared(mode, "Read"), mode.stats()["last_completion"]


@pytest.mark.parametrize("kimi", ["web"], indirect=True)
def test_claude_code_runs_an_echo_with_its_bash_tool(mode, tmp_path):
    """Claude Code runs the model's `Bash` call (`echo`, which -p mode allows without asking;
    `command` is the schema's one required parameter, `description` is optional) and sends the
    output back. The answer must be the echoed line: the command text itself,
    which the second prompt also holds as the earlier call, would answer with a trailing
    `</parameter>`, so an exact match tells that the command ran."""
    mode.script(text=[call_markup("Bash", form=mode.form, command="echo MOCK-REPLY: bash said hello")])
    mark = len(mode.log)
    result = claude(mode, tmp_path, "-p", "Say hello from bash")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "bash said hello", result.stdout
    prompt = mode.stats()["last_prompt"]
    last_result = prompt[prompt.rfind("<tool_result"):]
    assert last_result.startswith('<tool_result name="Bash"') and 'error="true"' not in last_result, last_result
    requests = requests_since(mode, mark, "/v1/messages", expected=2)
    assert len(requests) == 2 and all(" 200 " in line for line in requests), requests
    assert declared(mode, "Bash"), mode.stats()["last_completion"]


def chained_notes(cwd, name, form, **path):
    """first.txt, whose MOCK-REPLY line is the model's call of `name` on notes.txt: a loop of three
    requests (the call of first.txt, the call it scripts, the answer notes.txt scripts)."""
    call = call_markup(name, form=form, **{key: str(notes(cwd)) for key in path}).replace("\n", "")
    first = cwd / "first.txt"
    first.write_text(f"MOCK-REPLY: {call}\n")
    return first


def continued_one_chat(stack, turns_before):
    """The loop's Kimi turns: the second started a session, the third continued its chat with the
    newest tool result alone (not the question, nor the system prompt or the tools again)."""
    turns = stack.stats()["turns"][turns_before:]
    assert len(turns) == 3, turns
    second, third = turns[1], turns[2]
    assert not second["continued"] and "first.txt" in second["prompt"], second
    assert third["continued"] and third["chat_id"] == second["chat_id"], turns
    assert "<tool_result" in third["prompt"] and "first.txt" not in third["prompt"], third["prompt"]
    assert third["system"] is None, third
    return True


@pytest.mark.parametrize("kimi", ["web"], indirect=True)
def test_claude_code_loop_continues_one_kimi_chat(mode, tmp_path):
    """Three requests: the second starts an agent session, the third goes to its Kimi chat."""
    first = chained_notes(tmp_path, "Read", mode.form, file_path=True)
    mode.script(text=[call_markup("Read", form=mode.form, file_path=str(first))])
    turns_before = len(mode.stats()["turns"])
    result = claude(mode, tmp_path, "-p", "Read first.txt, then the file it names; tell me the secret word")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == SECRET, result.stdout
    assert continued_one_chat(mode, turns_before)


def gemini(stack, cwd, *args):
    settings = cwd / ".gemini" / "settings.json"
    settings.parent.mkdir(exist_ok=True)
    settings.write_text(json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}},
                                    "privacy": {"usageStatisticsEnabled": False}}))
    env = {"GOOGLE_GEMINI_BASE_URL": stack.url, "GEMINI_API_KEY": stack.token}
    return run([str(BIN / "gemini"), "-m", "kimi-k2", *args, "--skip-trust"], env, cwd)


@pytest.mark.parametrize("kimi", ["web"], indirect=True)
def test_gemini_cli_reads_a_file_with_its_read_file_tool(mode, tmp_path):
    """Gemini CLI gets the model's `read_file` call as a functionCall, reads notes.txt (inside
    its workspace, the working directory) and sends a functionResponse: two requests, and the
    answer printed once."""
    mode.script(text=[call_markup("read_file", form=mode.form, file_path=str(notes(tmp_path)))])
    mark = len(mode.log)
    result = gemini(mode, tmp_path, "-p", SECRET_QUESTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(SECRET) == 1, result.stdout
    assert not any(tag in result.stdout for tag in ("<tool_calls>", "<function_calls>", "<invoke")), result.stdout
    prompt = mode.stats()["last_prompt"]
    assert '<tool_result name="read_file"' in prompt, prompt[-2000:]
    requests = requests_since(mode, mark, "/v1beta/models/", expected=2)
    assert len(requests) == 2 and all(" 200 " in line for line in requests), requests
    assert declared(mode, "read_file"), mode.stats()["last_completion"]


@pytest.mark.parametrize("kimi", ["web"], indirect=True)
def test_gemini_cli_loop_continues_one_kimi_chat(mode, tmp_path):
    """Three requests: the second starts an agent session, the third goes to its Kimi chat."""
    first = chained_notes(tmp_path, "read_file", mode.form, file_path=True)
    mode.script(text=[call_markup("read_file", form=mode.form, file_path=str(first))])
    turns_before = len(mode.stats()["turns"])
    result = gemini(mode, tmp_path, "-p", "Read first.txt, then the file it names; tell me the secret word")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(SECRET) == 1, result.stdout
    assert continued_one_chat(mode, turns_before)


def test_gemini_cli_prints_the_answer(kimi, tmp_path):
    mark = len(kimi.log)
    result = gemini(kimi, tmp_path, "-p", "say hi")
    assert result.returncode == 0, result.stderr
    assert "Hello from the mock Kimi." in result.stdout
    assert result.stdout.count("Hello from the mock Kimi.") == 1, "no retried, duplicated output"
    requests = requests_since(kimi, mark, "/v1beta/models/")
    assert len(requests) == 1 and ":streamGenerateContent" in requests[0] and " 200 " in requests[0], requests


def codex(stack, cwd, prompt):
    """`codex exec` with a scratch CODEX_HOME whose config.toml points at the server (the one
    README shows), analytics and OpenTelemetry off, no approvals."""
    home = cwd / "codex-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(CODEX_CONFIG.replace("URL", stack.url))
    env = {"CODEX_HOME": str(home), "KIMI_TOKEN": stack.token}
    return run([str(BIN / "codex"), "exec", "--skip-git-repo-check", prompt], env, cwd)


CODEX_CONFIG = """model = "kimi"
model_provider = "kimi"
approval_policy = "never"
sandbox_mode = "danger-full-access"

[model_providers.kimi]
name = "Kimi"
base_url = "URL/v1"
wire_api = "responses"
env_key = "KIMI_TOKEN"

[analytics]
enabled = false

[otel]
exporter = "none"
"""


def test_codex_cli_prints_the_answer(kimi, tmp_path):
    mark = len(kimi.log)
    result = codex(kimi, tmp_path, "say hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("Hello from the mock Kimi."), result.stdout
    requests = requests_since(kimi, mark, "/v1/responses")
    assert len(requests) == 1 and " 200 " in requests[0], requests


@pytest.mark.parametrize("kimi", ["web"], indirect=True)
def test_codex_cli_runs_an_echo_with_its_exec_command_tool(mode, tmp_path):
    """Codex 0.169.0 declares its shell as the function `exec_command` (`cmd`, a string; see
    tests/fixtures/codex/): it runs the model's call, sends the output back as a
    function_call_output, and prints the answer the output's MOCK-REPLY line scripts."""
    mode.script(text=[call_markup("exec_command", form=mode.form, cmd="echo MOCK-REPLY: codex said hi")])
    mark = len(mode.log)
    result = codex(mode, tmp_path, "Say hi from the shell")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("codex said hi"), result.stdout
    prompt = mode.stats()["last_prompt"]
    assert '<tool_result name="exec_command"' in prompt, prompt[-2000:]
    requests = requests_since(mode, mark, "/v1/responses", expected=2)
    assert len(requests) == 2 and all(" 200 " in line for line in requests), requests
    assert declared(mode, "exec_command"), mode.stats()["last_completion"]


@pytest.fixture(autouse=True)
def _clis_installed():
    assert all((BIN / cli).exists() for cli in ("claude", "gemini", "codex")), "run `make cli-deps` (make test does)"
