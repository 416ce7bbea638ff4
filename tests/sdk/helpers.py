"""Small helpers shared by the SDK tests."""

import time

PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==")


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
