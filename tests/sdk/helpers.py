"""Small helpers shared by the SDK tests: the tokens the mock Kimi accepts, and waits."""

import base64
import html
import json
import time

PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==")


def _b64(data):
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


def jwt(claims):
    """An unsigned-looking JWT (base64url JSON, no padding) with these claims; the mock and the
    server read only the payload."""
    return f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}.c2ln"


def jwt_claims(token):
    """The payload of a JWT, or None for anything else (a legacy refresh_token)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None


def connect_token(sub):
    """An old kimi-auth JWT (payload typ=access, app_id=kimi, long-lived) for the user `sub`."""
    return jwt({"typ": "access", "app_id": "kimi", "sub": sub, "ssid": "17310864", "device_id": "76518041"})


def web_refresh_token(sub, region="cn"):
    """A 2026 web refresh token for the user `sub`, with the claims of `web_refresh_token_in`
    (tests/support/mod.rs): lives 90 days, carries the web client's session and device.

    The same string for the same `sub`: the mock keeps one session per `ssid` and revokes it when
    a refresh token it rotated away comes back, so two tests must not share a `sub` unless they
    present the very same string (the server maps that string to its newest rotated login)."""
    iat = 1_795_000_000
    return jwt({"iss": "account-nt", "typ": "refresh", "app_id": "kimi", "sub": sub, "ssid": f"ss-{sub}",
                "device_id": f"7{len(sub) * 7919:018d}", "region": region, "iat": iat,
                "exp": iat + 90 * 86_400})


def web_refreshes_of(stats, token):
    """The refresh tokens the mock's auth host was shown for the session of `token`, in order."""
    ssid = jwt_claims(token)["ssid"]
    return [t for t in stats["web_refresh_tokens"] if (jwt_claims(t) or {}).get("ssid") == ssid]


def settled(stack):
    """Waits (bounded) for the server's clean-up, then returns the mock's stats."""
    deadline = time.monotonic() + 5
    while True:
        stats = stack.stats()
        if not stats["live_chats"] or time.monotonic() > deadline:
            return stats
        time.sleep(0.02)


def busy_fault(kind):
    """The mock fault for "another answer is streaming on this account"."""
    error_type = "chat.user_stream_pushing" if kind == "legacy" else "resource_exhausted"
    return {"kind": "completion_status", "status": 400, "error_type": error_type}


def overloaded_fault(kind):
    """The mock fault for "Kimi is overloaded", before any output."""
    error_type = "openai.completion.stream" if kind == "legacy" else "unavailable"
    return {"kind": "error_event", "error_type": error_type, "message": "too busy", "after": 0}


# Tool calling: a tool the SDK tests declare, and the answer text the mock model writes to call it.
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                  "required": ["city"]}
WEATHER_ARGS = {"city": "Paris", "days": 2}


def call_markup(name, form="tool_calls", **parameters):
    """One call of `name` as the model writes it (docs/tools.md): in the server's grammar
    (`tool_calls`), or in the `function_calls` form Kimi's model answers native tools in, whose
    values are XML-escaped."""
    escape = (lambda text: html.escape(str(text), quote=False)) if form == "function_calls" else str
    lines = [f'<parameter name="{key}">{escape(value)}</parameter>' for key, value in parameters.items()]
    return "\n".join([f"<{form}>", f'<invoke name="{name}">', *lines, "</invoke>", f"</{form}>"])


def weather_call_pieces(name="get_weather"):
    """The answer pieces of a model that calls `name`(city=Paris, days=2): the markup split across
    events (inside tags, too), then what a model would invent after the block, which the server
    must never read or deliver."""
    markup = call_markup(name, city="Paris", days=2)
    pieces = [markup[at:at + 7] for at in range(0, len(markup), 7)]
    return pieces + ["\n<tool_result>rain, invented</tool_result>\nIt rains."]


# What the tool result says: the mock answers a prompt holding a `MOCK-REPLY:` line with the rest
# of that line, so the second turn's answer is "It is sunny." whatever the script's text.
SUNNY_RESULT = "MOCK-REPLY: It is sunny."
SUNNY = "It is sunny."
