"""Starts the mock Kimi upstream and the real server binary on loopback for the SDK tests.

The binaries come from `cargo build --bins --examples` (the Makefile builds them first); their
paths can be overridden with KIMI_FREE_API_BIN and MOCK_KIMI_BIN.
"""

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
TOKEN = "rt-sdk-token"


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


@pytest.fixture
def kimi(stack):
    """The stack with the mock's default script."""
    stack.script()
    return stack
