"""Unit tests of the SDK on plain CPython, against the real bindings' shapes.

componentize-py generates the world's bindings (`componentize-py bindings`: the same modules as
inside a component, whose host functions raise NotImplementedError); the tests replace the host
functions with fakes and check what the SDK sends and how it converts answers and errors.

    python -m unittest discover -s guest-sdk/python/tests      (componentize-py installed)
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import unittest
from pathlib import Path

SDK = Path(__file__).resolve().parents[1]
WIT = SDK.parents[1] / "wit"


def _componentize_py() -> str:
    for path in (sysconfig.get_path("scripts"), None):
        found = shutil.which("componentize-py", path=path)
        if found:
            return found
    raise unittest.SkipTest("componentize-py not installed: pip install componentize-py==0.25.1")


_BINDINGS = tempfile.mkdtemp(prefix="refract-sdk-test-")


def setUpModule() -> None:
    subprocess.run(
        [_componentize_py(), "-d", str(WIT), "-w", "automation", "bindings", _BINDINGS],
        check=True,
        capture_output=True,
    )
    sys.path[:0] = [_BINDINGS, str(SDK / "src")]
    for name in [m for m in sys.modules if m == "refract" or m.startswith(("refract.", "wit_world"))]:
        del sys.modules[name]


def tearDownModule() -> None:
    shutil.rmtree(_BINDINGS, ignore_errors=True)


class SdkTest(unittest.TestCase):
    def setUp(self) -> None:
        self.refract = importlib.import_module("refract")
        self.types = importlib.import_module("wit_world.imports.types")
        self.events = importlib.import_module("wit_world.imports.events")
        self.http = importlib.import_module("wit_world.imports.http")
        self.state = importlib.import_module("wit_world.imports.state")
        self.automations = importlib.import_module("wit_world.imports.automations")
        self.logging = importlib.import_module("wit_world.imports.logging")
        self.Err = importlib.import_module("componentize_py_types").Err
        self.logged: list = []
        self._saved = []
        self.fake(self.logging, "log", lambda level, message: self.logged.append((level.name, message)))

    def tearDown(self) -> None:
        for module, name, value in reversed(self._saved):
            setattr(module, name, value)

    def fake(self, module, name, f) -> None:
        self._saved.append((module, name, getattr(module, name)))
        setattr(module, name, f)

    def invocation(self, trigger, config="{}"):
        return self.types.Invocation(
            trigger=trigger,
            workspace_id="ws",
            automation_slug="slug",
            correlation_id="corr",
            user_id=None,
            session_id=None,
            config=config,
        )

    def http_trigger(self, body=b'{"a": 1}', query=(("x", "1"),)):
        return self.types.Trigger_Http(
            self.types.HttpRequest(
                method="POST", path="/p", query=list(query), headers=[("content-type", "application/json")], body=body
            )
        )

    def test_the_sdk_sees_the_bindings(self) -> None:
        self.assertTrue(self.refract.IN_SANDBOX)

    def test_a_handler_gets_the_invocation_and_its_output_becomes_the_runs(self) -> None:
        r = self.refract
        seen = {}

        def handler(inv):
            seen["inv"] = inv
            return r.respond({"echo": inv.request.json()}, status=201, headers={"x-n": 1})

        out = r.adapt(handler)(self.invocation(self.http_trigger(), config='{"k": "v"}'))
        inv = seen["inv"]
        self.assertEqual(inv.trigger.kind, "http")
        self.assertIsInstance(inv.trigger, r.HttpTrigger)
        self.assertEqual(inv.request.param("x"), "1")
        self.assertEqual(inv.request.header("Content-Type"), "application/json")
        self.assertEqual(inv.config, {"k": "v"})
        self.assertIsNone(inv.event)
        self.assertEqual(json.loads(out.body), {"echo": {"a": 1}})
        self.assertEqual((out.http.status, out.http.headers), (201, [("x-n", "1")]))

        # Any JSON value is the body with status 200; None is null.
        out = r.adapt(lambda inv: [1, "é"])(self.invocation(self.http_trigger()))
        self.assertEqual((out.body, out.http), ('[1,"é"]', None))
        out = r.adapt(lambda inv: None)(self.invocation(self.http_trigger()))
        self.assertEqual(out.body, "null")

    def test_every_trigger_kind(self) -> None:
        r, t = self.refract, self.types
        got = []
        run = r.adapt(lambda inv: got.append(inv.trigger))
        run(self.invocation(t.Trigger_Event(t.Event(id="1-0", type="a.b", payload='{"n":1}', source='{"s":2}'))))
        run(self.invocation(t.Trigger_Schedule(t.ScheduleTick(expression="* * * * * *", time="T"))))
        run(self.invocation(t.Trigger_Call('{"arg": true}')))
        self.assertEqual([g.kind for g in got], ["event", "schedule", "call"])
        self.assertEqual(got[0].event, r.Event(id="1-0", type="a.b", payload={"n": 1}, source={"s": 2}))
        self.assertEqual(got[1].schedule.expression, "* * * * * *")
        self.assertEqual(got[2].arguments, {"arg": True})

    def run_failing(self, handler):
        with self.assertRaises(self.Err) as caught:
            self.refract.adapt(handler)(self.invocation(self.http_trigger(body=b"{nope")))
        return caught.exception.value

    def test_errors_become_the_runs_automation_error(self) -> None:
        r = self.refract

        def refuses(inv):
            raise r.RefractError("InvalidOrder", "no such order", {"order": 42})

        e = self.run_failing(refuses)
        self.assertEqual((e.code, e.message, json.loads(e.details)), ("InvalidOrder", "no such order", {"order": 42}))

        e = self.run_failing(lambda inv: inv.request.json())
        self.assertEqual(e.code, "InvalidJson")
        self.assertEqual(json.loads(e.details), {"kind": "json"})

        def crashes(inv):
            raise KeyError("missing")

        e = self.run_failing(crashes)
        self.assertEqual((e.code, e.message), ("Uncaught", "KeyError: 'missing'"))
        self.assertEqual(json.loads(e.details), {"kind": "uncaught", "name": "KeyError"})
        # The traceback goes to the run's log.
        self.assertEqual(self.logged[-1][0], "ERROR")
        self.assertIn("crashes", self.logged[-1][1])

        e = self.run_failing(lambda inv: r.respond({}, status=700))
        self.assertEqual(e.code, "InvalidOutput")
        e = self.run_failing(lambda inv: {"nan": float("nan")})
        self.assertEqual(e.code, "InvalidJson")
        e = self.run_failing(lambda inv: {"x": object()})
        self.assertEqual(e.code, "InvalidJson")

    def test_host_errors_are_refract_errors_with_the_rust_codes(self) -> None:
        r = self.refract

        def refuse(case):
            def f(*args):
                raise self.Err(case)

            return f

        self.fake(self.events, "emit", refuse(self.events.EmitError_TooLarge(9)))
        with self.assertRaises(r.RefractError) as e:
            r.emit("a.b", {})
        self.assertEqual((e.exception.code, e.exception.message), ("EmitFailed", "too-large (9)"))
        self.assertEqual(e.exception.details, {"kind": "tooLarge", "value": 9})

        self.fake(self.http, "fetch", refuse(self.http.FetchError_Timeout()))
        with self.assertRaises(r.RefractError) as e:
            r.fetch("http://x")
        self.assertEqual((e.exception.code, e.exception.details), ("FetchFailed", {"kind": "timeout"}))

        self.fake(self.state, "get", refuse(self.state.StateError_NoSuchScope()))
        with self.assertRaises(r.RefractError) as e:
            r.state.get("user", "x")
        self.assertEqual((e.exception.code, e.exception.details), ("StateFailed", {"kind": "noSuchScope"}))
        with self.assertRaises(r.RefractError) as e:
            r.state.get("galaxy", "x")
        self.assertEqual(e.exception.details, {"kind": "invalid"})

        failed = self.automations.CallError_Failed(self.types.AutomationError("Nope", "callee said no", '{"d":1}'))
        self.fake(self.automations, "call", refuse(failed))
        with self.assertRaises(r.RefractError) as e:
            r.call("other", {"a": 1})
        self.assertEqual((e.exception.code, e.exception.message, e.exception.details), ("Nope", "callee said no", {"d": 1}))
        self.fake(self.automations, "call", refuse(self.automations.CallError_NotFound("other")))
        with self.assertRaises(r.RefractError) as e:
            r.call("other")
        self.assertEqual((e.exception.code, e.exception.message), ("CallFailed", "not-found: other"))

    def test_calls_send_json_and_take_json(self) -> None:
        r = self.refract
        sent = {}

        def emit(type, payload, target, persist):
            sent["emit"] = (type, json.loads(payload), target and json.loads(target), persist)
            return "1-0"

        self.fake(self.events, "emit", emit)
        self.assertEqual(r.emit("a.b", {"n": 1}, target={"userId": "u"}, persist=False), "1-0")
        self.assertEqual(sent["emit"], ("a.b", {"n": 1}, {"userId": "u"}, False))

        def wait(conditions, timeout_ms):
            sent["wait"] = ([(c.type, c.filters) for c in conditions], timeout_ms)
            return self.types.Event(id="2-0", type="r", payload='{"ok":true}', source="{}")

        self.fake(self.events, "wait", wait)
        event = r.wait(r.Condition("r", {"payload.n": 1}, correlation_id="corr"), 250.7)
        self.assertEqual(event.payload, {"ok": True})
        self.assertEqual(sent["wait"], ([("r", [("payload.n", "1"), ("source.correlationId", '"corr"')])], 250))

        def fetch(request):
            sent["fetch"] = request
            return self.http.Response(status=404, headers=[("content-type", "text/plain")], body=b"gone")

        self.fake(self.http, "fetch", fetch)
        res = r.fetch("http://x/y", method="post", json={"q": 1})
        self.assertEqual((res.status, res.text(), res.header("Content-Type")), (404, "gone", "text/plain"))
        self.assertEqual(sent["fetch"].method, "POST")
        self.assertEqual(sent["fetch"].body, b'{"q":1}')
        self.assertIn(("content-type", "application/json"), sent["fetch"].headers)
        with self.assertRaises(r.RefractError):
            r.fetch("http://x", body={"not": "bytes"})

        store = {}
        self.fake(self.state, "get", lambda scope, path: store.get((scope.name, path)))
        self.fake(self.state, "set", lambda scope, path, value: store.__setitem__((scope.name, path), value))
        self.assertEqual(r.state.get("global", "n", 0), 0)
        r.state.set("global", "n", {"deep": [1]})
        self.assertEqual(store, {("GLOBAL", "n"): '{"deep":[1]}'})
        self.assertEqual(r.state.get("global", "n"), {"deep": [1]})

        r.log.info("count", {"n": 1}, 2)
        self.assertEqual(self.logged[-1], ("INFO", 'count {"n":1} 2'))

    def test_outside_a_component_host_calls_say_so(self) -> None:
        r = self.refract
        saved = r.IN_SANDBOX
        r.IN_SANDBOX = False
        try:
            with self.assertRaises(r.OutsideTheSandbox):
                r.emit("a.b", {})
        finally:
            r.IN_SANDBOX = saved


class BuildTest(unittest.TestCase):
    def test_the_build_says_what_is_wrong_before_componentizing(self) -> None:
        sys.path.insert(0, str(SDK / "src"))
        build = importlib.import_module("refract.build")
        with tempfile.TemporaryDirectory() as d:
            folder = Path(d)
            with self.assertRaisesRegex(build.BuildError, "no module 'app'"):
                build.build(folder, None, folder / "out.wasm")
            (folder / "app.py").write_text("def other(inv):\n    return 1\n")
            with self.assertRaisesRegex(build.BuildError, "defines no handler"):
                build.build(folder, None, folder / "out.wasm")
            with self.assertRaisesRegex(build.BuildError, "not a Python module name"):
                build.build(folder, "no-dashes", folder / "out.wasm")
            with self.assertRaisesRegex(build.BuildError, "cannot be named"):
                build.build(folder, "refract", folder / "out.wasm")
            (folder / "pyproject.toml").write_text('[tool.refract]\nmodule = "hooks.main"\n')
            with self.assertRaisesRegex(build.BuildError, "no module 'hooks.main'"):
                build.build(folder, None, folder / "out.wasm")
        self.assertTrue((build.find_wit() / "automation.wit").is_file())

    def test_componentize_py_is_pinned_once(self) -> None:
        """pyproject.toml, the build, .ci/run and the CLI name the same componentize-py."""
        sys.path.insert(0, str(SDK / "src"))
        build = importlib.import_module("refract.build")
        pin = f"componentize-py=={build.COMPONENTIZE_PY_VERSION}"
        self.assertIn(f'"{pin}"', (SDK / "pyproject.toml").read_text())
        repo = SDK.parents[1]
        self.assertIn(f"COMPONENTIZE_PY={pin}", (repo / ".ci/run").read_text())
        self.assertIn(f'"{pin}"', (repo / "services/cli/src/build.rs").read_text())
        self.assertIn(f'"{pin}"', (repo / "tests/tests/it/python_guests.rs").read_text())
        installed = subprocess.run([_componentize_py(), "--version"], capture_output=True, text=True).stdout
        self.assertEqual(installed.strip(), f"componentize-py {build.COMPONENTIZE_PY_VERSION}")


if __name__ == "__main__":
    unittest.main()
