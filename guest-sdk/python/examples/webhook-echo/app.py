"""webhook-echo: answers a webhook request with its method, path, query and JSON body, with
status 201 for a POST (200 otherwise) and an x-refract-echo header (as the Rust example)."""

from refract import Invocation, Output, RefractError, log, respond


def handler(inv: Invocation) -> Output:
    req = inv.request
    if req is None:
        raise RefractError("NotAWebhook", "webhook-echo only answers webhook requests")
    # An empty body echoes as None; a body that is not JSON fails the run with InvalidJson.
    body = None if not req.body else req.json()
    log.debug(f"echoing {req.method} {req.path}")
    return respond(
        {"method": req.method, "path": req.path, "query": req.query, "body": body},
        status=201 if req.method == "POST" else 200,
        headers={"x-refract-echo": inv.correlation_id},
    )
