"""fetch-then-wait: fetches config.url, emits a fetch-then-wait.requested event with the
result, then waits (config.timeoutMs, default 5 s) for a config.replyType event (default
fetch-then-wait.replied) with the run's correlation id. Returns both."""

from dataclasses import dataclass
from typing import Any

from refract import Condition, Invocation, RefractError, emit, fetch, log, wait


@dataclass
class Config:
    url: str
    reply_type: str = "fetch-then-wait.replied"
    timeout_ms: int = 5_000

    @classmethod
    def of(cls, config: dict[str, Any]) -> "Config":
        url = config.get("url")
        if not isinstance(url, str):
            raise RefractError("InvalidConfig", "config.url must be a URL", {"kind": "config"})
        return cls(
            url=url,
            reply_type=config.get("replyType", cls.reply_type),
            timeout_ms=int(config.get("timeoutMs", cls.timeout_ms)),
        )


def handler(inv: Invocation) -> dict[str, Any]:
    config = Config.of(inv.config)
    response = fetch(config.url, headers={"accept": "application/json"})
    # A JSON body is returned as JSON, anything else as text.
    try:
        body = response.json()
    except RefractError:
        body = response.text()

    request_event_id = emit(
        "fetch-then-wait.requested",
        {"url": config.url, "status": response.status, "correlationId": inv.correlation_id},
    )

    reply = wait(Condition(config.reply_type, correlation_id=inv.correlation_id), config.timeout_ms)
    if reply is None:
        log.warn(f"no reply within {config.timeout_ms} ms")

    return {
        "fetch": {"status": response.status, "body": body},
        "requestEventId": request_event_id,
        "reply": reply and {"id": reply.id, "payload": reply.payload},
    }
