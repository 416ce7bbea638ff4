"""The official google-genai Python SDK against the server, over every kind of Kimi token.

google-genai calls the `/v1` API version by default; Gemini CLI uses `/v1beta` (covered by
the Rust behaviour tests).
"""

import base64
import json

import pytest
from google import genai
from google.genai import errors, types
from helpers import PNG, busy_fault, settled


# google-genai closes its HTTP client when the Client object is collected, even while its
# `models` are still in use: keep every client of the session alive.
_CLIENTS = []


def client(stack, token=None):
    made = genai.Client(api_key=token or stack.token, http_options=types.HttpOptions(base_url=stack.url))
    _CLIENTS.append(made)
    return made


def test_generate_content(kimi):
    response = client(kimi).models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert response.text == "Hello from the mock Kimi."
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata.total_token_count > 0
    assert settled(kimi)["live_chats"] == []


def test_generate_content_stream(kimi):
    chunks = list(client(kimi).models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert "".join(chunk.text or "" for chunk in chunks) == "Hello from the mock Kimi."
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


def test_system_instruction_and_history(kimi):
    client(kimi).models.generate_content(
        model="gemini-2.5-flash",
        contents=[types.Content(role="user", parts=[types.Part(text="hello")]),
                  types.Content(role="model", parts=[types.Part(text="hi")]),
                  types.Content(role="user", parts=[types.Part(text="again")])],
        config=types.GenerateContentConfig(system_instruction="be brief", temperature=0.2))
    assert kimi.stats()["last_prompt"] == (
        "system:be brief\nuser:hello\nassistant:hi\nsystem:关注用户最新的消息\nuser:again\n")


def test_thoughts(kimi):
    kimi.script(thinking=["pondering"], text=["42"])
    response = client(kimi).models.generate_content(
        model="gemini-2.5-flash", contents="q",
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True)))
    assert response.text == "42", "thought parts are not part of response.text"
    parts = response.candidates[0].content.parts
    assert parts[0].thought is True and parts[0].text == "pondering"
    assert response.usage_metadata.thoughts_token_count > 0


def test_json_mode(kimi):
    kimi.script(text=['{"answer": 42}'])
    response = client(kimi).models.generate_content(
        model="gemini-2.5-flash", contents="give me json",
        config=types.GenerateContentConfig(response_mime_type="application/json",
                                           response_schema={"type": "OBJECT", "properties": {"answer": {"type": "INTEGER"}}}))
    assert json.loads(response.text) == {"answer": 42}


def test_image(kimi):
    uploads_before = len(kimi.stats()["uploads"])
    response = client(kimi).models.generate_content(model="gemini-2.5-flash", contents=[
        types.Part.from_bytes(data=base64.b64decode(PNG), mime_type="image/png"), "what is this?"])
    assert response.text == "Hello from the mock Kimi."
    assert len(settled(kimi)["uploads"]) == uploads_before + 1


def test_count_tokens_and_models(kimi):
    assert client(kimi).models.count_tokens(model="gemini-2.5-flash", contents="hi").total_tokens > 0
    names = [model.name for model in client(kimi).models.list()]
    assert "models/kimi" in names
    assert client(kimi).models.get(model="kimi-search").name == "models/kimi-search"


def test_bad_token_raises_client_error(kimi):
    with pytest.raises(errors.ClientError) as raised:
        client(kimi, token=kimi.refused_token).models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert raised.value.code == 401


def test_busy_account_raises_client_error_429(kimi):
    kimi.script(fault=busy_fault(kimi.kind))
    with pytest.raises(errors.ClientError) as raised:
        client(kimi).models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert raised.value.code == 429
