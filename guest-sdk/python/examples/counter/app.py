"""counter: a counter in the workspace's global state, incremented once per run; returns the
new count. The state path is config.key (default counter.value)."""

from refract import Invocation, RefractError, state


def handler(inv: Invocation) -> dict[str, int]:
    key = inv.config.get("key")
    path = key if isinstance(key, str) else "counter.value"
    # Nothing stored yet counts as 0; a stored value that is not a number fails the run.
    stored = state.get("global", path, 0)
    if not isinstance(stored, int) or isinstance(stored, bool):
        raise RefractError("InvalidJson", f"the state at {path} is not a number", {"kind": "json"})
    count = stored + 1
    state.set("global", path, count)
    return {"count": count}
