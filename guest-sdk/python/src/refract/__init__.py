"""refract: Refract automations in Python.

An automation is a WebAssembly component of the ``refract:automation@0.1.6`` world
(``wit/automation.wit``), built from your module by ``refract-build`` (componentize-py: CPython
inside the component). This module wraps the world's imports in plain Python: JSON travels as
values (parsed and serialized here), host errors are raised as :class:`RefractError` with stable
codes (the same as the Rust and JavaScript SDKs'), and your ``handler``'s return value or raised
error becomes the run's output or ``automation-error``.

The ``wit_world`` modules it calls only exist inside the component (componentize-py generates
them at build time); outside it, every host call raises :class:`OutsideTheSandbox`.
"""

from __future__ import annotations

import json as _json
import traceback as _traceback
from dataclasses import asdict as _asdict
from dataclasses import dataclass, field
from dataclasses import is_dataclass as _is_dataclass
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypedDict,
    Union,
)

try:  # Inside the component: the bindings componentize-py generated for the world.
    from componentize_py_types import Err as _Err  # type: ignore[import-not-found, unused-ignore]
    from wit_world.imports import automations as _automations  # type: ignore[import-not-found, unused-ignore]
    from wit_world.imports import concurrent as _concurrent  # type: ignore[import-not-found, unused-ignore]
    from wit_world.imports import events as _events  # type: ignore[import-not-found, unused-ignore]
    from wit_world.imports import http as _http  # type: ignore[import-not-found, unused-ignore]
    from wit_world.imports import logging as _logging  # type: ignore[import-not-found, unused-ignore]
    from wit_world.imports import response as _response_host  # type: ignore[import-not-found, unused-ignore]
    from wit_world.imports import secrets as _secrets  # type: ignore[import-not-found, unused-ignore]
    from wit_world.imports import state as _state  # type: ignore[import-not-found, unused-ignore]
    from wit_world.imports import timers as _timers  # type: ignore[import-not-found, unused-ignore]
    from wit_world.imports import types as _types  # type: ignore[import-not-found, unused-ignore]

    IN_SANDBOX = True
except ImportError:  # Outside (type checkers, unit tests, plain CPython).
    IN_SANDBOX = False

__version__ = "0.1.0"

__all__ = [
    "CallTrigger",
    "Codes",
    "Condition",
    "Done",
    "Event",
    "EventTrigger",
    "Handler",
    "HttpRequest",
    "HttpTrigger",
    "Identity",
    "Invocation",
    "Json",
    "OutsideTheSandbox",
    "Output",
    "RateLimit",
    "RefractError",
    "Response",
    "Schedule",
    "ScheduleTrigger",
    "Scope",
    "Trigger",
    "adapt",
    "call",
    "concurrent",
    "emit",
    "fetch",
    "log",
    "respond",
    "secrets",
    "sleep",
    "state",
    "stream",
    "wait",
]

Json = Any
"""Any JSON value: ``None``, ``bool``, ``int``, ``float``, ``str``, lists and dicts of them."""

# ---------------------------------------------------------------------------------------------
# Errors


class Codes:
    """Codes of the errors the SDK raises (the Rust and JavaScript SDKs' codes)."""

    EMIT_FAILED = "EmitFailed"
    WAIT_FAILED = "WaitFailed"
    FETCH_FAILED = "FetchFailed"
    STATE_FAILED = "StateFailed"
    STREAM_FAILED = "StreamFailed"
    CALL_FAILED = "CallFailed"
    INVALID_JSON = "InvalidJson"
    INVALID_OUTPUT = "InvalidOutput"
    INVALID_INVOCATION = "InvalidInvocation"
    UNCAUGHT = "Uncaught"


class RefractError(Exception):
    """A failure the automation reports on purpose: becomes the run's ``automation-error``.

    ``code`` is stable and machine-readable (``InvalidOrder``), ``message`` is for humans,
    ``details`` is any JSON value. Errors the SDK raises for host errors carry
    ``details = {"kind": <the host error's case>, ...}``.
    """

    def __init__(self, code: str, message: str, details: Json = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def __repr__(self) -> str:
        return f"RefractError({self.code!r}, {self.message!r}, {self.details!r})"


class OutsideTheSandbox(RuntimeError):
    """A host call made outside a component (the ``wit_world`` bindings are not there)."""


def _need_host() -> None:
    if not IN_SANDBOX:
        raise OutsideTheSandbox(
            "refract host calls only work inside the component (build it with refract-build)"
        )


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _kebab(name: str) -> str:
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")


def _host_error(code: str, case: Any) -> RefractError:
    """A WIT variant case (``EmitError_TooLarge(value=9)``) as a RefractError."""
    tag = type(case).__name__.rsplit("_", 1)[-1]
    details: Dict[str, Any] = {"kind": _camel(tag)}
    if hasattr(case, "value"):
        value = case.value
        details["value"] = value
        text = f": {value}" if isinstance(value, str) else f" ({value})"
    else:
        text = ""
    return RefractError(code, f"{_kebab(tag)}{text}", details)


def _guard(code: str, f: Callable[[], Any]) -> Any:
    _need_host()
    try:
        return f()
    except _Err as e:
        raise _host_error(code, e.value) from None


def _parse(text: Union[str, bytes], what: str) -> Json:
    try:
        return _json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise RefractError(Codes.INVALID_JSON, f"{what} is not JSON: {e}", {"kind": "json"}) from None


def _encode(value: Any) -> Any:
    if _is_dataclass(value) and not isinstance(value, type):
        return _asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _stringify(value: Json, what: str) -> str:
    try:
        return _json.dumps(
            value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_encode
        )
    except (TypeError, ValueError) as e:
        raise RefractError(Codes.INVALID_JSON, f"{what} cannot be serialized: {e}", {"kind": "json"}) from None


# ---------------------------------------------------------------------------------------------
# The invocation


@dataclass(frozen=True)
class HttpRequest:
    """A request that reached the automation's webhook."""

    method: str
    """Upper-case method."""
    path: str
    """The path as received by the gateway."""
    query: List[Tuple[str, str]]
    """Decoded query parameters, in order; a repeated name appears several times."""
    headers: List[Tuple[str, str]]
    """Lower-case names, credentials removed by the gateway."""
    body: bytes
    """The raw body."""

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        lower = name.lower()
        return next((v for k, v in self.headers if k == lower), None)

    def param(self, name: str) -> Optional[str]:
        """The first value of query parameter ``name``, or ``None``."""
        return next((v for k, v in self.query if k == name), None)

    def text(self) -> str:
        """The body as UTF-8 text (invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Json:
        """The body parsed as JSON; raises ``InvalidJson`` when it is not."""
        return _parse(self.body, "the request body")


@dataclass(frozen=True)
class Event:
    """An event of the workspace, as delivered to automations."""

    id: str
    """``<milliseconds>-<sequence>``, unique within the workspace."""
    type: str
    """e.g. ``orders.created``."""
    payload: Json
    """The payload (an object)."""
    source: Json
    """The envelope's ``source`` (workspace, user, correlation id, ...)."""


@dataclass(frozen=True)
class Schedule:
    """A tick of one of the automation's schedules."""

    expression: str
    """The cron expression that fired."""
    time: str
    """When the tick was due, ISO-8601 UTC."""


@dataclass(frozen=True)
class HttpTrigger:
    """A request to the automation's webhook."""

    request: HttpRequest
    kind: Literal["http"] = "http"


@dataclass(frozen=True)
class EventTrigger:
    """An event matching one of the automation's ``when.events``."""

    event: Event
    kind: Literal["event"] = "event"


@dataclass(frozen=True)
class ScheduleTrigger:
    """A tick of one of the automation's ``when.schedules``."""

    schedule: Schedule
    kind: Literal["schedule"] = "schedule"


@dataclass(frozen=True)
class CallTrigger:
    """A direct call from another automation (or a test run)."""

    arguments: Json
    kind: Literal["call"] = "call"


Trigger = Union[HttpTrigger, EventTrigger, ScheduleTrigger, CallTrigger]
"""What started the run; ``trigger.kind`` is ``"http"``, ``"event"``, ``"schedule"`` or ``"call"``."""


@dataclass(frozen=True)
class Invocation:
    """Everything a run is given."""

    trigger: Trigger
    workspace_id: str
    automation_slug: str
    correlation_id: str
    """Shared by everything one trigger causes."""
    user_id: Optional[str]
    session_id: Optional[str]
    config: Json
    """The automation's config (a dict) with secrets resolved."""

    @property
    def request(self) -> Optional[HttpRequest]:
        """The webhook request, or ``None`` when the run was not started by a webhook."""
        return self.trigger.request if isinstance(self.trigger, HttpTrigger) else None

    @property
    def event(self) -> Optional[Event]:
        """The triggering event, or ``None`` when the run was not started by one."""
        return self.trigger.event if isinstance(self.trigger, EventTrigger) else None


def _event(raw: Any) -> Event:
    return Event(
        id=raw.id,
        type=raw.type,
        payload=_parse(raw.payload, "the event payload"),
        source=_parse(raw.source, "the event source"),
    )


def _invocation(raw: Any) -> Invocation:
    t = raw.trigger
    case = type(t).__name__.rsplit("_", 1)[-1]
    trigger: Trigger
    if case == "Http":
        r = t.value
        trigger = HttpTrigger(
            HttpRequest(
                method=r.method,
                path=r.path,
                query=[(k, v) for k, v in r.query],
                headers=[(k, v) for k, v in r.headers],
                body=bytes(r.body),
            )
        )
    elif case == "Event":
        trigger = EventTrigger(_event(t.value))
    elif case == "Schedule":
        trigger = ScheduleTrigger(Schedule(expression=t.value.expression, time=t.value.time))
    elif case == "Call":
        trigger = CallTrigger(_parse(t.value, "the call arguments"))
    else:
        raise RefractError(Codes.INVALID_INVOCATION, f"unknown trigger {case}")
    return Invocation(
        trigger=trigger,
        workspace_id=raw.workspace_id,
        automation_slug=raw.automation_slug,
        correlation_id=raw.correlation_id,
        user_id=raw.user_id,
        session_id=raw.session_id,
        config=_parse(raw.config, "the config"),
    )


# ---------------------------------------------------------------------------------------------
# The output

Headers = Union[Mapping[str, Any], Iterable[Tuple[str, Any]]]


@dataclass(frozen=True)
class Output:
    """An output with HTTP parts, made by :func:`respond`."""

    body: Json
    status: int = 200
    headers: List[Tuple[str, str]] = field(default_factory=list)


def _header_list(headers: Optional[Headers]) -> List[Tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), str(v)) for k, v in items]


def respond(body: Json, status: int = 200, headers: Optional[Headers] = None) -> Output:
    """An output with a status (100 to 599) and headers. A handler may also return any JSON
    value (the body, status 200)."""
    return Output(body=body, status=status, headers=_header_list(headers))


Handler = Callable[[Invocation], Any]
"""The shape of the module's ``handler``: takes the :class:`Invocation`, returns an
:class:`Output` (from :func:`respond`) or any JSON value."""


def _output(value: Any) -> Any:
    if isinstance(value, Output):
        status = value.status
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise RefractError(
                Codes.INVALID_OUTPUT, f"status {status!r} is outside 100 to 599", {"kind": "invalidOutput"}
            )
        return _types.Output(
            body=_stringify(value.body, "the output"),
            http=_types.HttpResponse(status=status, headers=list(value.headers)),
        )
    return _types.Output(body=_stringify(value, "the output"), http=None)


def _automation_error(e: BaseException) -> Any:
    if isinstance(e, RefractError):
        details = None if e.details is None else _safe_details(e.details)
        return _types.AutomationError(code=str(e.code), message=str(e.message), details=details)
    name = type(e).__name__
    # The traceback goes to the run's log: the error itself carries the type and message.
    try:
        _logging.log(_logging.Level.ERROR, "".join(_traceback.format_exception(e)))
    except Exception:  # pragma: no cover - logging never fails the run
        pass
    return _types.AutomationError(
        code=Codes.UNCAUGHT,
        message=f"{name}: {e}",
        details=_stringify({"kind": "uncaught", "name": name}, "the details"),
    )


def _safe_details(details: Json) -> str:
    try:
        return _stringify(details, "the error details")
    except RefractError:
        return _stringify({"unserializable": repr(details)}, "the error details")


def adapt(handler: Handler) -> Callable[[Any], Any]:
    """Adapts ``handler(invocation)`` to the world's ``run`` export. ``refract-build`` does it
    for you with your module's ``handler``."""
    if not callable(handler):
        raise TypeError(
            "the automation module must define a handler: `def handler(inv: Invocation): ...`"
        )

    def run(raw: Any) -> Any:
        try:
            return _output(handler(_invocation(raw)))
        except Exception as e:  # every failure is the run's error, never a trap
            raise _Err(_automation_error(e)) from None

    return run


# ---------------------------------------------------------------------------------------------
# events


class Target(TypedDict, total=False):
    """Who an emitted event reaches (all optional)."""

    userId: str
    sessionId: str
    userTopic: str


def emit(type: str, payload: Json, *, target: Optional[Target] = None, persist: bool = True) -> str:
    """Publishes an event of ``type`` with ``payload`` (a dict); returns its id.
    Raises ``EmitFailed``."""
    body = _stringify(payload, "the payload")
    to = None if target is None else _stringify(target, "the target")
    return str(_guard(Codes.EMIT_FAILED, lambda: _events.emit(type, body, to, persist)))


@dataclass(frozen=True)
class Condition:
    """One condition an awaited event must meet: its ``type``, equality ``filters`` (a dotted
    path into the event, ``payload.order.id``, and the value it must equal), and
    ``correlation_id`` (shorthand for the filter ``source.correlationId``)."""

    type: str
    filters: Mapping[str, Json] = field(default_factory=dict)
    correlation_id: Optional[str] = None


def _conditions(conditions: Union[Condition, Sequence[Condition]]) -> List[Any]:
    items = [conditions] if isinstance(conditions, Condition) else list(conditions)
    out = []
    for c in items:
        filters = list(c.filters.items())
        if c.correlation_id is not None:
            filters.append(("source.correlationId", c.correlation_id))
        out.append(
            _events.Condition(
                type=c.type, filters=[(k, _stringify(v, "a filter value")) for k, v in filters]
            )
        )
    return out


def _millis(ms: Union[int, float]) -> int:
    return max(0, min(int(ms), 0xFFFF_FFFF))


def wait(conditions: Union[Condition, Sequence[Condition]], timeout_ms: Union[int, float]) -> Optional[Event]:
    """Waits until an event (published after the call) meets one of ``conditions``, or
    ``timeout_ms`` passes: the event, or ``None`` on timeout. Raises ``WaitFailed``."""
    _need_host()
    found = _guard(Codes.WAIT_FAILED, lambda: _events.wait(_conditions(conditions), _millis(timeout_ms)))
    return None if found is None else _event(found)


# ---------------------------------------------------------------------------------------------
# http


@dataclass(frozen=True)
class Response:
    """The remote server's answer, whatever its status."""

    status: int
    headers: List[Tuple[str, str]]
    """Lower-case names."""
    body: bytes

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        lower = name.lower()
        return next((v for k, v in self.headers if k == lower), None)

    def text(self) -> str:
        """The body as UTF-8 text (invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Json:
        """The body parsed as JSON; raises ``InvalidJson`` when it is not."""
        return _parse(self.body, "the response body")


def _request(url: str, method: str, headers: Optional[Headers], body: Any, json: Any) -> Any:
    header_list = _header_list(headers)
    data: Optional[bytes]
    if json is not None:
        if body is not None:
            raise RefractError(Codes.FETCH_FAILED, "pass body or json, not both", {"kind": "invalidRequest"})
        data = _stringify(json, "the request body").encode()
        if not any(k.lower() == "content-type" for k, _ in header_list):
            header_list.append(("content-type", "application/json"))
    elif body is None:
        data = None
    elif isinstance(body, str):
        data = body.encode()
    elif isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
    else:
        raise RefractError(
            Codes.FETCH_FAILED,
            f"a body is str or bytes, not {type(body).__name__} (use json= for JSON)",
            {"kind": "invalidRequest"},
        )
    return _http.Request(method=method.upper(), url=url, headers=header_list, body=data)


def _response(raw: Any) -> Response:
    return Response(status=raw.status, headers=[(k, v) for k, v in raw.headers], body=bytes(raw.body))


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: Optional[Headers] = None,
    body: Union[str, bytes, None] = None,
    json: Json = None,
) -> Response:
    """Sends a request under the workspace's egress policy: ``body`` (str or bytes) as is, or
    ``json`` serialized (with ``content-type: application/json``). Any status is a response;
    raises ``FetchFailed`` when there is none (denied, timeout, connection failed, ...)."""
    _need_host()
    request = _request(url, method, headers, body, json)
    return _response(_guard(Codes.FETCH_FAILED, lambda: _http.fetch(request)))


# ---------------------------------------------------------------------------------------------
# state

Scope = Literal["global", "user", "session", "run", "socket"]
"""Where a variable lives: ``global`` (the workspace), ``user``, ``session``, ``run`` (this run
and its calls) or ``socket`` (the WebSocket connection)."""


@dataclass(frozen=True)
class RateLimit:
    """A limiter after a call: ``ok`` when the points were taken."""

    ok: bool
    remaining: int
    retry_after: int


@dataclass(frozen=True)
class Identity:
    """Who the run acts as."""

    user_id: Optional[str]
    session_id: Optional[str]


_MISSING: Any = object()


class _State:
    """Context variables in a scope. Every method raises ``StateFailed``."""

    @staticmethod
    def _scope(scope: str) -> Any:
        try:
            return _state.Scope[scope.upper()]
        except KeyError:
            raise RefractError(
                Codes.STATE_FAILED,
                f"invalid: unknown scope {scope!r} (global, user, session, run, socket)",
                {"kind": "invalid"},
            ) from None

    def get(self, scope: Scope, path: str, default: Json = None) -> Json:
        """The value at the dotted ``path`` in ``scope``, or ``default`` when nothing is there."""
        _need_host()
        if scope == "socket":
            v = _guard(Codes.STATE_FAILED, lambda: _state.socket_get(path))
        else:
            s = self._scope(scope)
            v = _guard(Codes.STATE_FAILED, lambda: _state.get(s, path))
        return default if v is None else _parse(v, f"the state at {path}")

    def set(self, scope: Scope, path: str, value: Json) -> None:
        """Writes ``value`` at ``path`` in ``scope``, creating parents as needed."""
        _need_host()
        text = _stringify(value, "the value")
        if scope == "socket":
            _guard(Codes.STATE_FAILED, lambda: _state.socket_set(path, text))
        else:
            s = self._scope(scope)
            _guard(Codes.STATE_FAILED, lambda: _state.set(s, path, text))

    def delete(self, scope: Scope, path: str) -> None:
        """Removes the value at ``path`` in ``scope`` (removing nothing is no error)."""
        _need_host()
        if scope == "socket":
            _guard(Codes.STATE_FAILED, lambda: _state.socket_delete(path))
        else:
            s = self._scope(scope)
            _guard(Codes.STATE_FAILED, lambda: _state.delete(s, path))

    def rate_limit(self, name: str, consumer: str, limit: int, window_secs: int, consume: int = 1) -> RateLimit:
        """Takes ``consume`` points from the limiter (``name``, ``consumer``) allowing ``limit``
        points per window of ``window_secs`` seconds, shared by every runtime instance."""
        r = _guard(
            Codes.STATE_FAILED, lambda: _state.rate_limit(name, consumer, limit, window_secs, consume)
        )
        return RateLimit(ok=r.ok, remaining=r.remaining, retry_after=r.retry_after)

    def create_user_topic(self, topic: str, user_ids: Sequence[str] = ()) -> Optional[Json]:
        """Creates ``topic`` with ``user_ids`` as members; the ``events.userTopics.created``
        event, or ``None`` when the topic existed."""
        e = _guard(Codes.STATE_FAILED, lambda: _state.create_user_topic(topic, list(user_ids)))
        return None if e is None else _parse(e, "the event")

    def join_user_topic(self, topic: str, user_ids: Sequence[str] = (), create: bool = False) -> List[Json]:
        """Makes ``user_ids`` (default: the run's user) members of ``topic``; the
        ``events.userTopics.joined`` events."""
        events = _guard(Codes.STATE_FAILED, lambda: _state.join_user_topic(topic, list(user_ids), create))
        return [_parse(e, "the event") for e in events]

    def switch_identity(self, *, user_id: Optional[str] = None, session_id: Optional[str] = None) -> Identity:
        """Continues the run as another user or session (exactly one of the two)."""
        i = _guard(Codes.STATE_FAILED, lambda: _state.switch_identity(user_id, session_id))
        return Identity(user_id=i.user_id, session_id=i.session_id)

    def set_config(self, path: str, value: Json = _MISSING) -> None:
        """Writes ``value`` at ``path`` of the workspace's config; no value removes it."""
        text = None if value is _MISSING else _stringify(value, "the value")
        _guard(Codes.STATE_FAILED, lambda: _state.set_config(path, text))


state = _State()
"""Context variables: ``state.get``, ``state.set``, ``state.delete``, ``state.rate_limit``, ..."""


# ---------------------------------------------------------------------------------------------
# logging


class _Log:
    """Log lines, tagged by the host with the run's ids. Arguments are joined by spaces; what
    is not a string is written as JSON (or its ``repr``)."""

    @staticmethod
    def _line(args: Tuple[Any, ...]) -> str:
        def one(a: Any) -> str:
            if isinstance(a, str):
                return a
            try:
                return _stringify(a, "a log argument")
            except RefractError:
                return repr(a)

        return " ".join(one(a) for a in args)

    def _log(self, level: str, args: Tuple[Any, ...]) -> None:
        _need_host()
        _logging.log(_logging.Level[level], self._line(args))

    def trace(self, *args: Any) -> None:
        self._log("TRACE", args)

    def debug(self, *args: Any) -> None:
        self._log("DEBUG", args)

    def info(self, *args: Any) -> None:
        self._log("INFO", args)

    def warn(self, *args: Any) -> None:
        self._log("WARN", args)

    def error(self, *args: Any) -> None:
        self._log("ERROR", args)


log = _Log()
"""``log.trace/debug/info/warn/error(*args)``."""


# ---------------------------------------------------------------------------------------------
# automations


def _call_error(case: Any) -> RefractError:
    if type(case).__name__.endswith("_Failed"):
        err = case.value
        details = None if err.details is None else _parse(err.details, "the callee's error details")
        return RefractError(err.code, err.message, details)
    return _host_error(Codes.CALL_FAILED, case)


def call(slug: str, arguments: Optional[Mapping[str, Json]] = None) -> Json:
    """Runs the automation ``slug`` of the workspace with ``arguments`` (a dict); its output
    body. A callee's own error is raised as is; other failures as ``CallFailed``."""
    _need_host()
    args = _stringify({} if arguments is None else arguments, "the arguments")
    try:
        out = _automations.call(slug, args)
    except _Err as e:
        raise _call_error(e.value) from None
    return _parse(out, "the output")


# ---------------------------------------------------------------------------------------------
# secrets


class _Secrets:
    """The workspace's secrets, read by name."""

    def get(self, name: str, default: Json = None) -> Json:
        """The secret's value (a string secret is a ``str``), or ``default`` when missing."""
        _need_host()
        v = _secrets.get(name)
        return default if v is None else _parse(v, f"the secret {name}")


secrets = _Secrets()


# ---------------------------------------------------------------------------------------------
# concurrent


@dataclass(frozen=True)
class Done:
    """A started call that ended: ``kind`` is ``fetch``, ``wait`` or ``call``; ``ok`` says
    whether ``value`` (a :class:`Response`, an :class:`Event` or ``None``, a call's output) or
    ``error`` (a :class:`RefractError`) is set."""

    ticket: int
    kind: Literal["fetch", "wait", "call"]
    ok: bool
    value: Any = None
    error: Optional[RefractError] = None


def _ticket(t: Any) -> Optional[int]:
    return None if t is None else int(t)


class _Concurrent:
    """Fetches, waits and calls in flight together. Each ``start_*`` returns a ticket, or
    ``None`` when the host refuses more in flight (then make the blocking call);
    ``next_done()`` blocks until one or more ended."""

    def start_fetch(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Optional[Headers] = None,
        body: Union[str, bytes, None] = None,
        json: Json = None,
    ) -> Optional[int]:
        _need_host()
        return _ticket(_concurrent.start_fetch(_request(url, method, headers, body, json)))

    def start_wait(self, conditions: Union[Condition, Sequence[Condition]], timeout_ms: Union[int, float]) -> Optional[int]:
        _need_host()
        return _ticket(_concurrent.start_wait(_conditions(conditions), _millis(timeout_ms)))

    def start_call(self, slug: str, arguments: Optional[Mapping[str, Json]] = None) -> Optional[int]:
        _need_host()
        args = _stringify({} if arguments is None else arguments, "the arguments")
        return _ticket(_concurrent.start_call(slug, args))

    def next_done(self) -> List[Done]:
        _need_host()
        out = []
        for d in _concurrent.next_done():
            case = type(d.outcome).__name__.rsplit("_", 1)[-1]
            result = d.outcome.value
            kind: Literal["fetch", "wait", "call"] = (
                "fetch" if case == "Fetched" else "wait" if case == "Waited" else "call"
            )
            if isinstance(result, _Err):
                if kind == "fetch":
                    error = _host_error(Codes.FETCH_FAILED, result.value)
                elif kind == "wait":
                    error = _host_error(Codes.WAIT_FAILED, result.value)
                else:
                    error = _call_error(result.value)
                out.append(Done(ticket=d.ticket, kind=kind, ok=False, error=error))
                continue
            raw = result.value
            if kind == "fetch":
                value: Any = _response(raw)
            elif kind == "wait":
                value = None if raw is None else _event(raw)
            else:
                value = _parse(raw, "the output")
            out.append(Done(ticket=d.ticket, kind=kind, ok=True, value=value))
        return out


concurrent = _Concurrent()


# ---------------------------------------------------------------------------------------------
# response, timers


class _Stream:
    """A webhook's answer streamed as server-sent events while the run goes on. Raises
    ``StreamFailed``."""

    def start(self, status: int = 200, headers: Optional[Headers] = None, keep_alive_ms: Optional[int] = None) -> None:
        """Starts the answer with ``status`` and ``headers`` (once per run)."""
        _guard(Codes.STREAM_FAILED, lambda: _response_host.start(status, _header_list(headers), keep_alive_ms))

    def send(self, chunk: Json) -> None:
        """Sends ``chunk`` as the event ``data: <json>`` (starting the answer if needed)."""
        text = _stringify(chunk, "the chunk")
        _guard(Codes.STREAM_FAILED, lambda: _response_host.send(text))


stream = _Stream()


def sleep(ms: Union[int, float]) -> bool:
    """Pauses the run for ``ms`` milliseconds of wall clock, spending no CPU; ``False`` (at
    once) when the run has no time left for it."""
    _need_host()
    return bool(_timers.sleep(_millis(ms)))
