"""The official OpenAI Python SDK against the server, over every kind of Kimi token."""

import json
import stat
import time

import openai
import pydantic
import pytest
from helpers import (PNG, SUNNY, SUNNY_RESULT, WEATHER_ARGS, WEATHER_SCHEMA, busy_fault, settled,
                     weather_call_pieces, web_refresh_token, web_refreshes_of)


def client(stack, token=None, **options):
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=token or stack.token, **options)


def test_create(kimi):
    completion = client(kimi).chat.completions.create(
        model="kimi", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "Hello from the mock Kimi."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "kimi"
    assert completion.usage.total_tokens > 0
    assert settled(kimi)["live_chats"] == []


def test_create_stream_with_usage(kimi):
    stream = client(kimi).chat.completions.create(
        model="kimi", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "hi"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the mock Kimi."
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_stream_helper_and_reasoning(kimi):
    kimi.script(thinking=["Let me ", "think."], text=["42"])
    with client(kimi).chat.completions.stream(
            model="kimi-k1", messages=[{"role": "user", "content": "q"}]) as stream:
        reasoning = "".join(
            getattr(event.chunk.choices[0].delta, "reasoning_content", None) or ""
            for event in stream if event.type == "chunk" and event.chunk.choices)
        final = stream.get_final_completion()
    assert reasoning == "Let me think."
    assert final.choices[0].message.content == "42"
    completion = client(kimi).chat.completions.create(
        model="kimi-k1", messages=[{"role": "user", "content": "q"}])
    assert completion.choices[0].message.model_extra["reasoning_content"] == "Let me think."


def test_multi_turn_with_system_prompt(kimi):
    client(kimi).chat.completions.create(model="kimi", messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "again"}])
    sent = kimi.sent_prompt()
    assert sent == "system:be brief\nuser:hello\nassistant:hi\nsystem:关注用户最新的消息\nuser:again\n"


def test_search_citations(kimi):
    kimi.script(search=[["Doc", "https://d.example"]], text=["Found."])
    stream = client(kimi).chat.completions.create(
        model="kimi-search", stream=True, messages=[{"role": "user", "content": "find"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "【检索 1】 [Doc](https://d.example)\n\nFound."


def test_models_list(kimi):
    ids = [model.id for model in client(kimi).models.list()]
    assert "kimi" in ids and "kimi-search" in ids


def test_bad_token_raises_authentication_error(kimi):
    with pytest.raises(openai.AuthenticationError):
        client(kimi, token=kimi.refused_token).chat.completions.create(
            model="kimi", messages=[{"role": "user", "content": "hi"}])


def test_busy_account_raises_rate_limit_error(kimi):
    kimi.script(fault=busy_fault(kimi.kind))
    with pytest.raises(openai.RateLimitError):
        client(kimi, max_retries=0).chat.completions.create(
            model="kimi", messages=[{"role": "user", "content": "hi"}])


def test_upstream_failure_raises_internal_server_error(kimi):
    kimi.script(fault={"kind": "completion_status", "status": 500, "error_type": ""})
    with pytest.raises(openai.InternalServerError):
        client(kimi, max_retries=0).chat.completions.create(
            model="kimi", stream=True, messages=[{"role": "user", "content": "hi"}])
    assert settled(kimi)["live_chats"] == []


def test_bad_request_raises_bad_request_error(kimi):
    with pytest.raises(openai.BadRequestError):
        client(kimi).chat.completions.create(model="kimi", messages=[])


def test_mid_stream_error_raises_api_error(kimi):
    kimi.script(fault={"kind": "error_event", "error_type": "x", "message": "boom", "after": 1})
    stream = client(kimi, max_retries=0).chat.completions.create(
        model="kimi", stream=True, messages=[{"role": "user", "content": "hi"}])
    received = []
    with pytest.raises(openai.APIError, match="boom"):
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Hello"
    assert settled(kimi)["live_chats"] == []


def test_image_data_url(kimi):
    uploads_before = len(kimi.stats()["uploads"])
    completion = client(kimi).chat.completions.create(model="kimi", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG, "detail": "auto"}}]}])
    assert completion.choices[0].message.content == "Hello from the mock Kimi."
    assert len(settled(kimi)["uploads"]) == uploads_before + 1


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "The weather of a city",
                                           "parameters": WEATHER_SCHEMA}},
         {"type": "function", "function": {"name": "get_time", "description": "The time",
                                           "parameters": {"type": "object", "properties": {}}}}]
WEATHER_QUESTION = {"role": "user", "content": "What is the weather in Paris for two days?"}


def ask_with_tools(stack, messages, stream):
    """One chat completion with TOOLS: (text, [(id, name, arguments as a dict)], finish_reason).
    Streamed, the calls are rebuilt from `delta.tool_calls` by index, as the SDK documents."""
    sdk = client(stack, max_retries=0)
    if not stream:
        completion = sdk.chat.completions.create(model="kimi", messages=messages, tools=TOOLS)
        choice = completion.choices[0]
        calls = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls or []]
        assert all(c.type == "function" for c in choice.message.tool_calls or [])
        return choice.message.content or "", calls, choice.finish_reason
    text, calls, finishes = [], {}, []
    for chunk in sdk.chat.completions.create(model="kimi", messages=messages, tools=TOOLS, stream=True):
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        text.append(choice.delta.content or "")
        for delta in choice.delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            if delta.function:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""
        if choice.finish_reason:
            finishes.append(choice.finish_reason)
    assert len(finishes) == 1, finishes
    calls = [(c["id"], c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())]
    return "".join(text), calls, finishes[0]


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_tool_call_round_trip(kimi, stream):
    """The model's call markup becomes `tool_calls` (and nothing it would write after the block
    reaches the client); the call and a `role: tool` result sent back reach the model as the
    grammar and a <tool_result>, and its answer ends the loop."""
    kimi.script(text=weather_call_pieces())
    text, calls, finish = ask_with_tools(kimi, [WEATHER_QUESTION], stream)
    assert finish == "tool_calls"
    assert text.strip() == ""
    assert [(name, arguments) for _, name, arguments in calls] == [("get_weather", WEATHER_ARGS)]
    call_id = calls[0][0]
    assert call_id.startswith("call_")
    first_prompt = kimi.sent_prompt()
    assert "## get_weather" in first_prompt and "<tool_calls>" in first_prompt, "the tools are shown"
    assert settled(kimi)["live_chats"] == []

    text, calls, finish = ask_with_tools(kimi, [
        WEATHER_QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": {
            "name": "get_weather", "arguments": json.dumps(WEATHER_ARGS)}}]},
        {"role": "tool", "tool_call_id": call_id, "content": SUNNY_RESULT}], stream)
    assert (text, calls, finish) == (SUNNY, [], "stop")
    prompt = kimi.sent_prompt()
    assert '<tool_result name="get_weather"' in prompt, prompt
    assert '<invoke name="get_weather">' in prompt, "the earlier call, in the grammar"


def test_tool_call_stream_helper(kimi):
    """`client.chat.completions.stream(...)` with a strict Pydantic tool: the helper's
    accumulated completion holds the call with its arguments parsed into the model."""
    import pydantic

    class GetWeather(pydantic.BaseModel):
        """The weather of a city"""
        city: str
        days: int

    kimi.script(text=weather_call_pieces("GetWeather"))
    with client(kimi).chat.completions.stream(
            model="kimi", messages=[WEATHER_QUESTION], tools=[openai.pydantic_function_tool(GetWeather)]) as stream:
        done = [event for event in stream if event.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    assert [(event.name, event.parsed_arguments) for event in done] == [("GetWeather", GetWeather(**WEATHER_ARGS))]
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls[0].function.parsed_arguments == GetWeather(**WEATHER_ARGS)


# The 2026 web login's access tokens live this long in the rotation test; the server renews one
# a quarter of its life before it expires, so after REFRESH_PAST seconds it must renew.
ACCESS_LIFETIME = 2
REFRESH_PAST = 1.6


@pytest.fixture
def short_logins(stack):
    stack.script(access_lifetime_secs=ACCESS_LIFETIME)
    yield stack
    stack.script()


def test_web_login_rotates_and_survives_a_restart(short_logins):
    """One pasted web refresh token, several requests while access tokens expire: the server
    renews at the auth host, presents each rotated refresh token once and never the spent one
    again, and a new server process on the same state directory (as after a restart) goes on
    from the rotated login saved there."""
    stack = short_logins
    token = web_refresh_token("sdk-rotation")
    before = stack.stats()
    answers = []

    def ask(url):
        with openai.OpenAI(base_url=url + "/v1", api_key=token, max_retries=0) as sdk:
            completion = sdk.chat.completions.create(model="kimi", messages=[{"role": "user", "content": "hi"}])
            answers.append(completion.choices[0].message.content)
            stream = sdk.chat.completions.create(model="kimi", stream=True,
                                                 messages=[{"role": "user", "content": "hi"}])
            answers.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))

    ask(stack.url)                      # logs in: the pasted token is spent
    time.sleep(REFRESH_PAST)
    ask(stack.url)                      # the access token is due: renewed with the rotated one
    restarted = stack.start_server(stack.state_dir)  # memory empty, state directory kept
    time.sleep(REFRESH_PAST)
    ask(restarted.url)                  # renewed with the rotation saved in the state directory
    restarted.stop()

    assert answers == ["Hello from the mock Kimi."] * 6
    after = settled(stack)
    presented = web_refreshes_of(after, token)[len(web_refreshes_of(before, token)):]
    assert presented[0] == token
    assert len(presented) >= 3, "one login and two renewals"
    assert len(set(presented)) == len(presented), "no refresh token was presented twice"
    assert after["sessions_revoked"] == 0
    assert after["live_chats"] == []
    # The login is kept privately, and the server never said it would be lost.
    assert stat.S_IMODE(stack.state_dir.stat().st_mode) == 0o700
    files = list(stack.state_dir.iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files), files
    assert not any("restart will lose" in line for line in stack.server.startup + restarted.startup)


RESPONSES_TOOLS = [{"type": "function", "name": "get_weather", "description": "The weather of a city",
                    "parameters": WEATHER_SCHEMA}]


def test_responses_create(kimi):
    """`client.responses.create`: the Responses API's typed response, text in `output_text`."""
    response = client(kimi).responses.create(model="kimi", instructions="be brief", input="hi")
    assert response.status == "completed" and response.object == "response"
    assert response.output_text == "Hello from the mock Kimi."
    assert response.id.startswith("resp_") and response.usage.total_tokens > 0
    assert kimi.sent_prompt().startswith("system:be brief")
    assert settled(kimi)["live_chats"] == []


def test_responses_stream_with_reasoning(kimi):
    """Streamed: typed events in order, the reasoning summary, and the final response."""
    kimi.script(thinking=["Let me ", "think."], text=["4", "2"])
    stream = client(kimi).responses.create(model="kimi", input="q", stream=True, reasoning={"effort": "high"})
    events = list(stream)
    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert (summary, text) == ("Let me think.", "42")
    assert events[-1].response.output_text == "42"


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_responses_tool_round_trip(kimi, stream):
    """A `function_call` item out, then it and a `function_call_output` back in: the answer."""
    kimi.script(text=weather_call_pieces())
    sdk = client(kimi, max_retries=0)

    def ask(input_items):
        if not stream:
            return sdk.responses.create(model="kimi", input=input_items, tools=RESPONSES_TOOLS)
        with sdk.responses.stream(model="kimi", input=input_items, tools=RESPONSES_TOOLS) as events:
            return events.get_final_response()

    question = [{"role": "user", "content": "What is the weather in Paris for two days?"}]
    first = ask(question)
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", WEATHER_ARGS)]
    assert calls[0].call_id.startswith("call_")
    second = ask(question + [
        {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather", "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": SUNNY_RESULT}])
    assert second.output_text == SUNNY
    assert '<tool_result name="get_weather"' in kimi.sent_prompt()


class Person(pydantic.BaseModel):
    name: str
    age: int


def parse(stack, **options):
    """`chat.completions.parse` (`beta.chat.completions.parse` in older SDKs)."""
    completions = client(stack).chat.completions
    if not hasattr(completions, "parse"):
        completions = client(stack).beta.chat.completions
    return completions.parse(model="kimi", messages=[{"role": "user", "content": "Who is Ann?"}], **options)


def test_parse_with_a_pydantic_model(kimi):
    kimi.script(text=["```json\n", '{"name": "Ann", ', '"age": 30}', "\n```"])
    message = parse(kimi, response_format=Person).choices[0].message
    assert message.parsed == Person(name="Ann", age=30)
    assert message.refusal is None
    assert json.loads(message.content) == {"name": "Ann", "age": 30}
    assert settled(kimi)["live_chats"] == []


def test_parse_of_prose_is_a_refusal_not_invented_json(kimi):
    kimi.script(text=["I do not know Ann."])
    choice = parse(kimi, response_format=Person).choices[0]
    assert choice.message.parsed is None
    assert "not the JSON that was asked for" in choice.message.refusal
    assert choice.message.content == "I do not know Ann."
    assert choice.finish_reason == "stop"
