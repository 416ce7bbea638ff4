"""`make demo` (examples/demo.rs) used as a newcomer uses it: started, each command it prints
pasted into a shell as it is (a streamed curl chat, the OpenAI Python SDK, Claude Code, the
doctor through the server), each token it prints used as an API key, then Ctrl-C: the server
and the mock stop and the server's state directory is gone. Every wait is bounded."""

import json
import os
import signal
import subprocess
import threading
import urllib.error
import urllib.request

import pytest
from conftest import ROOT

DEMO_BIN = os.environ.get("DEMO_BIN", str(ROOT / "target/debug/examples/demo"))
READY = "Ready."
START_TIMEOUT = 20


class Demo:
    """The demo running with its own temporary directory (where its state directory goes)."""

    def __init__(self, tmp):
        self.tmp = tmp
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "TMPDIR": str(tmp)}
        # A session of its own, as a terminal gives: Ctrl-C (and a kill here) reach the server too.
        self.process = subprocess.Popen([DEMO_BIN], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env, start_new_session=True)
        self.log = []
        threading.Thread(target=self._drain, daemon=True).start()
        timer = threading.Timer(START_TIMEOUT, self.kill)
        timer.start()
        lines = []
        try:
            for _ in range(200):
                line = self.process.stdout.readline()
                if not line or line.startswith(READY):
                    break
                lines.append(line)
        finally:
            timer.cancel()
        self.printed = "".join(lines)
        assert self.process.poll() is None, (self.printed, self.log)
        self.url = self.printed.split("the server ", 1)[1].split()[0]
        assert self.url.startswith("http://127.0.0.1:"), self.printed

    def _drain(self):
        for line in self.process.stderr:
            self.log.append(line)

    def blocks(self):
        """The pasteable commands: each `# title` line and the lines under it, to a blank line."""
        found, title = {}, None
        for line in self.printed.splitlines():
            if line.startswith("# "):
                title, found[line[2:]] = line[2:], []
            elif not line.strip():
                title = None
            elif title:
                found[title].append(line)
        return {name: "\n".join(lines) + "\n" for name, lines in found.items()}

    def block(self, words):
        matches = [text for name, text in self.blocks().items() if words in name]
        assert len(matches) == 1, (words, list(self.blocks()))
        return matches[0]

    def tokens(self):
        """The tokens printed under "Tokens the mock accepts", by kind."""
        section = self.printed.split("Tokens the mock accepts", 1)[1].split("\n\n", 1)[0]
        lines = section.splitlines()[1:]
        return {lines[i].strip().split(" (")[0]: lines[i + 1].strip() for i in range(0, len(lines) - 1, 2)}

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self):
        """Ctrl-C: SIGINT to the demo and the server it started."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=15)
        finally:
            if self.process.poll() is None:
                self.kill()


def paste(command, cwd, timeout=120):
    """Runs a printed command as a shell would run it pasted."""
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "TMPDIR": str(cwd)}
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    running = Demo(tmp_path_factory.mktemp("demo"))
    yield running
    if running.process.poll() is None:
        running.stop()


def test_the_streamed_curl_chat_shows_reasoning_citations_and_the_answer(demo, tmp_path):
    result = paste(demo.block("curl"), tmp_path)
    assert result.returncode == 0, result.stderr
    frames = [line[6:] for line in result.stdout.splitlines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]", result.stdout
    deltas = [json.loads(frame)["choices"][0]["delta"] for frame in frames[:-1] if json.loads(frame)["choices"]]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    content = "".join(d.get("content") or "" for d in deltas)
    assert "without a Kimi account" in reasoning, result.stdout
    assert "https://www.rust-lang.org/" in content and "mock Kimi of `make demo`" in content, content
    assert len(deltas) > 10, "streamed piece by piece"


def test_the_openai_sdk_command_prints_the_answer_with_its_citations(demo, tmp_path):
    result = paste(demo.block("OpenAI Python SDK"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "The Rust Programming Language" in result.stdout, result.stdout
    assert "Give the server your own Kimi token for real answers." in result.stdout, result.stdout


def test_the_claude_code_command_prints_the_answer(demo, tmp_path):
    result = paste(demo.block("Claude Code"), tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "This is the mock Kimi of `make demo`" in result.stdout, result.stdout


def test_the_doctor_command_passes_every_step_through_the_server(demo, tmp_path):
    result = paste(demo.block("doctor"), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "doctor: every step passed" in result.stdout, result.stdout
    assert "FAIL" not in result.stdout and "search     ok   2 citations" in result.stdout, result.stdout


def test_every_printed_token_is_a_working_api_key(demo):
    tokens = demo.tokens()
    assert len(tokens) == 4, tokens
    for kind, token in tokens.items():
        body = json.dumps({"model": "kimi", "messages": [{"role": "user", "content": "hi"}]}).encode()
        request = urllib.request.Request(demo.url + "/v1/chat/completions", data=body, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        assert "mock Kimi" in answer["choices"][0]["message"]["content"], (kind, answer)


def test_ctrl_c_stops_the_server_and_the_mock_and_removes_the_state_directory(tmp_path):
    demo = Demo(tmp_path)
    mock_url = demo.printed.split("mock Kimi (", 1)[1].split(")", 1)[0]
    assert list(tmp_path.glob("kimi-free-api-demo-*")), "the server's state directory is there"
    assert demo.stop() == 0, demo.log
    for url in (demo.url + "/ping", mock_url + "/_mock/stats"):
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(url, timeout=2)
    assert not list(tmp_path.glob("kimi-free-api-demo-*")), "the state directory is removed"
    assert any("stopped the server and the mock Kimi" in line for line in demo.log), demo.log
