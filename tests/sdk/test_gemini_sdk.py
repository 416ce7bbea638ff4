"""The official google-genai Python SDK against the server, over every kind of Kimi token.

google-genai calls the `/v1` API version by default; Gemini CLI uses `/v1beta` (covered by
the Rust behaviour tests).
"""

import base64
import json

import pydantic
import pytest
from google import genai
from google.genai import errors, types
from helpers import PNG, SUNNY, SUNNY_RESULT, WEATHER_ARGS, WEATHER_SCHEMA, busy_fault, settled, weather_call_pieces


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
    assert kimi.sent_prompt() == (
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


# Declarations, not Python callables: the SDK's automatic function calling (off as well) must
# not run anything; the test runs the loop itself.
TOOL_CONFIG = types.GenerateContentConfig(
    tools=[types.Tool(function_declarations=[
        types.FunctionDeclaration(name="get_weather", description="The weather of a city",
                                  parameters_json_schema=WEATHER_SCHEMA),
        types.FunctionDeclaration(name="get_time", description="The time",
                                  parameters=types.Schema(type=types.Type.OBJECT, properties={}))])],
    automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
WEATHER_QUESTION = types.Content(role="user", parts=[types.Part(text="What is the weather in Paris for two days?")])


def ask_with_tools(stack, contents, stream):
    """One answer with TOOL_CONFIG: (text, function calls, finish reason)."""
    models = client(stack).models
    if not stream:
        response = models.generate_content(model="gemini-2.5-flash", contents=contents, config=TOOL_CONFIG)
        return response.text or "", response.function_calls or [], response.candidates[0].finish_reason
    chunks = list(models.generate_content_stream(model="gemini-2.5-flash", contents=contents, config=TOOL_CONFIG))
    calls = [call for chunk in chunks for call in chunk.function_calls or []]
    text = "".join(part.text or "" for chunk in chunks if chunk.candidates and chunk.candidates[0].content
                   for part in chunk.candidates[0].content.parts or [])
    return text, calls, chunks[-1].candidates[0].finish_reason


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
def test_function_calling_round_trip(kimi, stream):
    """The model's call markup becomes a `functionCall` part (response.function_calls); the call
    and a `functionResponse` sent back reach the model as the grammar and a <tool_result>, and
    its answer ends the loop."""
    kimi.script(text=weather_call_pieces())
    text, calls, finish = ask_with_tools(kimi, [WEATHER_QUESTION], stream)
    assert [(call.name, call.args) for call in calls] == [("get_weather", WEATHER_ARGS)]
    assert text.strip() == ""
    assert finish == types.FinishReason.STOP
    assert settled(kimi)["live_chats"] == []

    text, calls, finish = ask_with_tools(kimi, [
        WEATHER_QUESTION,
        types.Content(role="model", parts=[types.Part(function_call=call) for call in calls]),
        types.Content(role="user", parts=[
            types.Part.from_function_response(name="get_weather", response={"output": SUNNY_RESULT})])], stream)
    assert (text, calls, finish) == (SUNNY, [], types.FinishReason.STOP)
    prompt = kimi.sent_prompt()
    assert '<tool_result name="get_weather"' in prompt, prompt
    assert '<invoke name="get_weather">' in prompt, "the earlier call, in the grammar"


def test_bad_token_raises_client_error(kimi):
    with pytest.raises(errors.ClientError) as raised:
        client(kimi, token=kimi.refused_token).models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert raised.value.code == 401


def test_busy_account_raises_client_error_429(kimi):
    kimi.script(fault=busy_fault(kimi.kind))
    with pytest.raises(errors.ClientError) as raised:
        client(kimi).models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert raised.value.code == 429


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_response_schema_is_parsed(kimi):
    kimi.script(text=["```json\n", '{"name": "Ann", "age": 30}', "\n```"])
    response = client(kimi).models.generate_content(
        model="gemini-2.5-flash", contents="Who is Ann?",
        config=types.GenerateContentConfig(response_mime_type="application/json", response_schema=Person))
    assert response.parsed == Person(name="Ann", age=30)
    assert response.candidates[0].finish_reason == types.FinishReason.STOP


def test_response_schema_with_prose_is_not_parsed(kimi):
    kimi.script(text=["I do not know Ann."])
    response = client(kimi).models.generate_content(
        model="gemini-2.5-flash", contents="Who is Ann?",
        config=types.GenerateContentConfig(response_mime_type="application/json", response_schema=Person))
    assert response.parsed is None
    assert response.text == "I do not know Ann."
    # The server says why in `finishMessage`, which google-genai drops on the Gemini API.
    assert response.candidates[0].finish_reason == types.FinishReason.OTHER
