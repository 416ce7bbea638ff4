"""Claude Code and Gemini CLI (pinned in tests/cli/package.json) against the server: a one-shot
prompt prints the answer with one request and no fallback.

Every test runs with a 2026 web refresh token (the `kimi` fixture's first kind). The CLIs are
the slowest tests of the suite, so the two older token kinds run only for each CLI's plain
answer; the overload test runs with the web token alone (the retries and the message are
Claude Code's own, and the server's 529 for every token kind is covered by
test_anthropic_sdk.py)."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT
from helpers import overloaded_fault

BIN = ROOT / "tests/cli/node_modules/.bin"


def requests_since(stack, mark, needle):
    """The server's log lines for `needle` after `mark` (bounded wait for the log to drain)."""
    deadline = time.monotonic() + 2
    while True:
        lines = [line for line in stack.log[mark:] if needle in line]
        if lines or time.monotonic() > deadline:
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


def test_gemini_cli_prints_the_answer(kimi, tmp_path):
    settings = tmp_path / ".gemini" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}},
                                    "privacy": {"usageStatisticsEnabled": False}}))
    mark = len(kimi.log)
    env = {"GOOGLE_GEMINI_BASE_URL": kimi.url, "GEMINI_API_KEY": kimi.token}
    result = run([str(BIN / "gemini"), "-m", "kimi-k2", "-p", "say hi", "--skip-trust"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Hello from the mock Kimi." in result.stdout
    assert result.stdout.count("Hello from the mock Kimi.") == 1, "no retried, duplicated output"
    requests = requests_since(kimi, mark, "/v1beta/models/")
    assert len(requests) == 1 and ":streamGenerateContent" in requests[0] and " 200 " in requests[0], requests


@pytest.fixture(autouse=True)
def _clis_installed():
    assert (BIN / "claude").exists() and (BIN / "gemini").exists(), "run `make cli-deps` (make test does)"
