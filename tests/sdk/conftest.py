"""Starts the mock Kimi upstream and the real server binary on loopback for the SDK tests.

The binaries come from `cargo build --bins --examples` (the Makefile builds them first); their
paths can be overridden with KIMI_FREE_API_BIN and MOCK_KIMI_BIN. Every Kimi host the server
knows (legacy, Connect, auth, and the global ones) is the mock, so nothing reaches a real Kimi,
and its state directory is a pytest temporary directory, so nothing is written into the
repository.
"""

import hashlib
import json
import os
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest
from helpers import connect_token, web_refresh_token

ROOT = Path(__file__).resolve().parents[2]
SERVER_BIN = os.environ.get("KIMI_FREE_API_BIN", str(ROOT / "target/debug/kimi-free-api"))
MOCK_BIN = os.environ.get("MOCK_KIMI_BIN", str(ROOT / "target/debug/examples/mock_kimi"))
LEGACY_TOKEN = "rt-sdk-token"
# The token kinds every `kimi` test runs with, the 2026 web login first.
KINDS = ["web", "legacy", "connect"]
# Start-up (the mock printing its URL, the server its listening line) must not take longer.
START_TIMEOUT = 10


def _first_line(process, until):
    """Lines of `process`'s pipe up to the first that satisfies `until` (killed after
    START_TIMEOUT so that a stuck start cannot hang the suite)."""
    pipe = process.stderr if process.stderr else process.stdout
    timer = threading.Timer(START_TIMEOUT, process.kill)
    timer.start()
    lines = []
    try:
        for _ in range(100):
            line = pipe.readline()
            if not line:
                break
            lines.append(line)
            if until(line):
                break
    finally:
        timer.cancel()
    return lines


class Server:
    """One server process against the mock, with a state directory of its own choosing."""

    def __init__(self, mock_url, state_dir, *extra):
        self.state_dir = state_dir
        self.process = subprocess.Popen(
            [SERVER_BIN, "--host", "127.0.0.1", "--port", "0", "--kimi-base-url", mock_url,
             "--kimi-connect-base-url", mock_url, "--kimi-auth-base-url", mock_url,
             "--kimi-global-base-url", mock_url, "--kimi-global-auth-base-url", mock_url,
             "--state-dir", str(state_dir), "--upstream-timeout", "2", "--workers", "8", *extra],
            stderr=subprocess.PIPE, text=True)
        # What the server said before it listened (a state directory problem, for one).
        self.startup = _first_line(self.process, lambda line: "listening on" in line)
        last = self.startup[-1].strip() if self.startup else ""
        self.url = last.rsplit(" ", 1)[-1]
        assert "listening on" in last and self.url.startswith("http://127.0.0.1:"), self.startup
        self.log = list(self.startup)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.process.stderr:
            self.log.append(line)

    def stop(self):
        self.process.kill()
        self.process.wait(timeout=5)

    def terminate(self):
        """A clean stop (SIGTERM): the drain deletes every agent session's Kimi chat."""
        self.process.terminate()
        self.process.wait(timeout=30)


class Stack:
    """The mock and the server, with helpers to script the mock and read what it saw."""

    def __init__(self, state_dir):
        self.mock = subprocess.Popen([MOCK_BIN], stdout=subprocess.PIPE, text=True)
        first = _first_line(self.mock, lambda line: True)
        self.mock_url = first[0].strip() if first else ""
        assert self.mock_url.startswith("http://127.0.0.1:"), first
        self.servers = []
        # One chat per request, as the SDK tests pin it (`settled` finds none left behind); the
        # CLI tool loops run on servers of their own with agent sessions on (test_cli.py).
        self.server = self.start_server(state_dir, "--sessions", "0")
        self.url, self.log, self.state_dir = self.server.url, self.server.log, state_dir

    def start_server(self, state_dir, *extra):
        """Another server against the same mock (stopped with the stack), with `extra` flags."""
        server = Server(self.mock_url, state_dir, *extra)
        self.servers.append(server)
        return server

    def script(self, **script):
        self._post("/_mock/script", script)

    def stats(self):
        with urllib.request.urlopen(self.mock_url + "/_mock/stats", timeout=5) as response:
            return json.load(response)

    def sent_prompt(self):
        """What Kimi was given to read in the last chat: on Connect the system prompt has a field
        of its own (docs/kimi-protocol.md §7.3), shown here as the `system:` line it replaces."""
        stats = self.stats()
        system = ((stats.get("last_completion") or {}).get("options") or {}).get("systemPrompt")
        prompt = stats["last_prompt"]
        return f"system:{system}\n{prompt}" if system else prompt

    def _post(self, path, body):
        request = urllib.request.Request(self.mock_url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    def stop(self):
        for server in self.servers:
            server.stop()
        self.mock.kill()
        self.mock.wait(timeout=5)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("kimi") / "state")
    yield running
    running.stop()


def user_of(request):
    """A Kimi user id of this test alone (and of this token kind), so that no two tests share a
    web login session in the one mock."""
    return "sdk-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]


def use_kind(stack, kind, user):
    """Sets the stack's token (and a token of the same kind Kimi refuses) for `kind`."""
    stack.kind = kind
    if kind == "web":
        stack.token, stack.refused_token = web_refresh_token(user), web_refresh_token("expired-sdk")
    elif kind == "legacy":
        stack.token, stack.refused_token = LEGACY_TOKEN, "bad-token"
    else:
        stack.token, stack.refused_token = connect_token("sdk-user"), connect_token("expired-sdk")
    return stack


@pytest.fixture(params=KINDS)
def kimi(stack, request):
    """The stack with the mock's default script, and a token of each kind in turn: a 2026 web
    refresh token (its own user per test), a legacy refresh_token, an old kimi-auth JWT."""
    stack.script()
    return use_kind(stack, request.param, user_of(request))
