"""The official Anthropic Python SDK against the server, over every kind of Kimi token."""

import anthropic
import pytest
from helpers import (PNG, SUNNY, SUNNY_RESULT, WEATHER_ARGS, WEATHER_SCHEMA, busy_fault, overloaded_fault, settled,
                     weather_call_pieces)

HI = [{"role": "user", "content": "hi"}]


def client(stack, token=None, **options):
    return anthropic.Anthropic(base_url=stack.url, api_key=token or stack.token, **options)


def test_create(kimi):
    message = client(kimi).messages.create(model="claude-opus-5-5", max_tokens=1024, messages=HI)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from the mock Kimi."
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert settled(kimi)["live_chats"] == []


def test_stream_helper(kimi):
    with client(kimi).messages.stream(model="claude-opus-5-5", max_tokens=1024, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the mock Kimi."
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == text


def test_raw_stream_event_order(kimi):
    stream = client(kimi).messages.create(model="claude-opus-5-5", max_tokens=1024, messages=HI, stream=True)
    types = [event.type for event in stream]
    assert types[0] == "message_start"
    assert types[-2:] == ["message_delta", "message_stop"]
    assert types.index("content_block_start") < types.index("content_block_delta") < types.index("content_block_stop")


def test_multi_turn_with_system_blocks(kimi):
    client(kimi).messages.create(
        model="claude-opus-5-5", max_tokens=1024,
        system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"},
                  {"role": "user", "content": "again"}])
    assert kimi.sent_prompt() == (
        "system:be brief\nuser:hello\nassistant:hi\nsystem:关注用户最新的消息\nuser:again\n")


def test_thinking(kimi):
    kimi.script(thinking=["Let me think."], text=["42"])
    with client(kimi).messages.stream(model="claude-opus-5-5", max_tokens=2048, messages=HI,
                                      thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert "thinking" in kinds and "signature" in kinds
    assert final.content[0].type == "thinking" and final.content[0].thinking == "Let me think."
    assert final.content[1].text == "42"
    # The signed thinking block is accepted back in the next turn.
    again = client(kimi).messages.create(model="claude-opus-5-5", max_tokens=1024, messages=[
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": final.content},
        {"role": "user", "content": "and?"}])
    assert again.content[-1].text == "42"


def test_image(kimi):
    uploads_before = len(kimi.stats()["uploads"])
    message = client(kimi).messages.create(model="claude-opus-5-5", max_tokens=1024, messages=[{
        "role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "text", "text": "what is this?"}]}])
    assert message.content[0].text == "Hello from the mock Kimi."
    assert len(settled(kimi)["uploads"]) == uploads_before + 1


def test_count_tokens_and_models(kimi):
    count = client(kimi).messages.count_tokens(model="claude-opus-5-5", messages=HI)
    assert count.input_tokens > 0
    ids = [model.id for model in client(kimi).models.list()]
    assert "kimi" in ids


TOOLS = [{"name": "get_weather", "description": "The weather of a city", "input_schema": WEATHER_SCHEMA},
         {"name": "get_time", "description": "The time", "input_schema": {"type": "object", "properties": {}}}]
WEATHER_QUESTION = {"role": "user", "content": "What is the weather in Paris for two days?"}


def test_tool_use_round_trip(kimi):
    """The model's call markup streams as a `tool_use` block (its input sent as JSON deltas the
    SDK assembles) and ends the message with stop_reason "tool_use"; the block and a
    `tool_result` sent back reach the model as the grammar and a <tool_result>, and its answer
    ends the loop."""
    kimi.script(text=weather_call_pieces())
    with client(kimi, max_retries=0).messages.stream(model="claude-opus-5-5", max_tokens=1024, tools=TOOLS,
                                                     messages=[WEATHER_QUESTION]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert "input_json" in kinds
    uses = [block for block in final.content if block.type == "tool_use"]
    assert [(use.name, use.input) for use in uses] == [("get_weather", WEATHER_ARGS)]
    assert uses[0].id.startswith("toolu_")
    assert not any(block.type == "text" and block.text.strip() for block in final.content), final.content
    assert settled(kimi)["live_chats"] == []

    with client(kimi, max_retries=0).messages.stream(model="claude-opus-5-5", max_tokens=1024, tools=TOOLS, messages=[
            WEATHER_QUESTION, {"role": "assistant", "content": final.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id,
                                          "content": SUNNY_RESULT}]}]) as stream:
        answer = stream.get_final_message()
    assert answer.stop_reason == "end_turn"
    assert [(block.type, block.text) for block in answer.content] == [("text", SUNNY)]
    prompt = kimi.sent_prompt()
    assert '<tool_result name="get_weather"' in prompt, prompt
    assert '<invoke name="get_weather">' in prompt, "the earlier call, in the grammar"


def test_tool_use_create(kimi):
    """Not streamed: the same call as a `tool_use` block of the message."""
    kimi.script(text=weather_call_pieces())
    message = client(kimi, max_retries=0).messages.create(model="claude-opus-5-5", max_tokens=1024, tools=TOOLS,
                                                          messages=[WEATHER_QUESTION])
    assert message.stop_reason == "tool_use"
    assert [(block.name, block.input) for block in message.content if block.type == "tool_use"] == [
        ("get_weather", WEATHER_ARGS)]


def test_bad_token_raises_authentication_error(kimi):
    with pytest.raises(anthropic.AuthenticationError):
        client(kimi, token=kimi.refused_token).messages.create(model="claude-opus-5-5", max_tokens=10, messages=HI)


def test_busy_account_raises_rate_limit_error(kimi):
    kimi.script(fault=busy_fault(kimi.kind))
    with pytest.raises(anthropic.RateLimitError):
        client(kimi, max_retries=0).messages.create(model="claude-opus-5-5", max_tokens=10, messages=HI)


def test_overloaded_kimi_raises_overloaded_error(kimi):
    kimi.script(fault=overloaded_fault(kimi.kind))
    with pytest.raises(anthropic.OverloadedError):
        client(kimi, max_retries=0).messages.create(model="claude-opus-5-5", max_tokens=10, messages=HI)
    assert settled(kimi)["live_chats"] == []


def test_mid_stream_failure_raises(kimi):
    kimi.script(fault={"kind": "cut", "after": 1})
    with pytest.raises(anthropic.APIStatusError):
        with client(kimi, max_retries=0).messages.stream(model="claude-opus-5-5", max_tokens=10, messages=HI) as stream:
            for _ in stream.text_stream:
                pass
    assert settled(kimi)["live_chats"] == []
