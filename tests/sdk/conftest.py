"""Starts the mock Kimi upstream and the real server binary on loopback for the SDK tests.

The binaries come from `cargo build --bins --examples` (the Makefile builds them first); their
paths can be overridden with KIMI_FREE_API_BIN and MOCK_KIMI_BIN.
"""

import base64
import json
import os
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_BIN = os.environ.get("KIMI_FREE_API_BIN", str(ROOT / "target/debug/kimi-free-api"))
MOCK_BIN = os.environ.get("MOCK_KIMI_BIN", str(ROOT / "target/debug/examples/mock_kimi"))
LEGACY_TOKEN = "rt-sdk-token"


def connect_token(sub):
    """A kimi-auth JWT (payload typ=access, app_id=kimi) that the mock accepts."""
    def b64(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    claims = {"typ": "access", "app_id": "kimi", "sub": sub, "ssid": "17310864", "device_id": "76518041"}
    return f"{b64({'alg': 'HS512'})}.{b64(claims)}.c2ln"


class Stack:
    """The mock and the server, with helpers to script the mock and read what it saw."""

    def __init__(self):
        self.mock = subprocess.Popen([MOCK_BIN], stdout=subprocess.PIPE, text=True)
        self.mock_url = self.mock.stdout.readline().strip()
        assert self.mock_url.startswith("http://127.0.0.1:"), self.mock_url
        self.server = subprocess.Popen(
            [SERVER_BIN, "--host", "127.0.0.1", "--port", "0", "--kimi-base-url", self.mock_url,
             "--kimi-connect-base-url", self.mock_url, "--upstream-timeout", "2", "--workers", "8"],
            stderr=subprocess.PIPE, text=True)
        first = self.server.stderr.readline().strip()
        self.url = first.rsplit(" ", 1)[-1]
        assert self.url.startswith("http://127.0.0.1:"), first
        self.log = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.server.stderr:
            self.log.append(line)

    def script(self, **script):
        self._post("/_mock/script", script)

    def stats(self):
        with urllib.request.urlopen(self.mock_url + "/_mock/stats", timeout=5) as response:
            return json.load(response)

    def _post(self, path, body):
        request = urllib.request.Request(self.mock_url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    def stop(self):
        for process in (self.server, self.mock):
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def stack():
    running = Stack()
    yield running
    running.stop()


@pytest.fixture(params=["legacy", "connect"])
def kimi(stack, request):
    """The stack with the mock's default script, and a token of each Kimi backend in turn."""
    stack.script()
    stack.token = LEGACY_TOKEN if request.param == "legacy" else connect_token("sdk-user")
    stack.refused_token = "bad-token" if request.param == "legacy" else connect_token("expired-sdk")
    stack.kind = request.param
    return stack
