"""refract-build: turns a Python automation into a WebAssembly component of the
``refract:automation`` world with componentize-py.

    refract-build [MODULE] [-o dist/component.wasm] [-C FOLDER]

MODULE (default: ``[tool.refract] module`` in pyproject.toml, else ``app``) is the Python module
defining ``handler(inv)``, found in the folder or its ``src/``. The component bundles CPython,
the module, this SDK and whatever they import from the interpreter's site-packages.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import List, NoReturn, Optional

#: The componentize-py this SDK is built and tested with (pyproject.toml pins it too).
COMPONENTIZE_PY_VERSION = "0.25.1"
#: The world every automation targets (wit/automation.wit).
WORLD = "automation"
DEFAULT_OUTPUT = "dist/component.wasm"

_SDK_DIR = Path(__file__).resolve().parent
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

# The module componentize-py makes the component from: the user's handler adapted to `run`.
# componentize-py imports it at build time and snapshots the initialised interpreter, so the
# imports below (CPython's, the SDK's, the user's module) cost nothing per run.
_ENTRY = """\
import wit_world
import refract
import {module} as _user

_run = refract.adapt(getattr(_user, "handler", None))


class WitWorld(wit_world.WitWorld):
    def run(self, invocation):
        return _run(invocation)
"""


class BuildError(Exception):
    """What went wrong, said to the user."""


def _fail(message: str) -> NoReturn:
    print(f"refract-build: {message}", file=sys.stderr)
    sys.exit(1)


def find_wit() -> Path:
    """The world's WIT: ``$REFRACT_WIT``, else the copy inside this package, else the
    repository's ``wit/``."""
    candidates = [os.environ.get("REFRACT_WIT"), _SDK_DIR / "wit"]
    if len(_SDK_DIR.parents) > 3:  # guest-sdk/python/src/refract in a checkout
        candidates.append(_SDK_DIR.parents[3] / "wit")
    for c in candidates:
        if c and (Path(c) / "automation.wit").is_file():
            return Path(c)
    looked = ", ".join(str(c) for c in candidates if c)
    raise BuildError(f"no automation.wit found (looked in {looked}); set REFRACT_WIT")


def find_componentize_py() -> str:
    """The componentize-py executable: next to this interpreter, else on PATH."""
    scripts = sysconfig.get_path("scripts")
    for path in [scripts, os.environ.get("PATH")]:
        if path:
            found = shutil.which("componentize-py", path=path)
            if found:
                return found
    raise BuildError(
        f"componentize-py not installed: pip install componentize-py=={COMPONENTIZE_PY_VERSION}"
    )


def _module_from_pyproject(folder: Path) -> Optional[str]:
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        import tomllib  # Python 3.11+
    except ImportError:  # pragma: no cover - Python 3.10
        return _module_from_pyproject_text(pyproject.read_text())
    with pyproject.open("rb") as f:
        try:
            doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise BuildError(f"{pyproject}: {e}") from None
    module = doc.get("tool", {}).get("refract", {}).get("module")
    if module is not None and not isinstance(module, str):
        raise BuildError(f"{pyproject}: [tool.refract] module must be a string")
    return module


def _module_from_pyproject_text(text: str) -> Optional[str]:
    section = re.search(r"^\[tool\.refract\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if not section:
        return None
    found = re.search(r'^\s*module\s*=\s*"([^"]+)"', section.group(1), re.M)
    return found.group(1) if found else None


def _source_dirs(folder: Path) -> List[Path]:
    return [d for d in (folder / "src", folder) if d.is_dir()]


def _module_file(module: str, dirs: List[Path]) -> Optional[Path]:
    rel = Path(*module.split("."))
    for d in dirs:
        for candidate in (d / rel.with_suffix(".py"), d / rel / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _site_packages() -> List[str]:
    """The interpreter's site-packages (the app's dependencies, installed with pip)."""
    found = []
    for p in [*site.getsitepackages(), site.getusersitepackages()]:
        if p and os.path.isdir(p) and p not in found:
            found.append(p)
    return found


def build(folder: Path, module: Optional[str], output: Path, quiet: bool = False) -> Path:
    """Builds the component of ``module`` in ``folder`` into ``output``; returns its path."""
    folder = folder.resolve()
    module = module or _module_from_pyproject(folder) or "app"
    if not _MODULE_NAME.match(module):
        raise BuildError(f"{module!r} is not a Python module name")
    if module.split(".")[0] in {"wit_world", "refract", "componentize_py_types", "refract_entry"}:
        raise BuildError(f"the module cannot be named {module!r} (the SDK or the bindings use it)")
    dirs = _source_dirs(folder)
    source = _module_file(module, dirs)
    if source is None:
        raise BuildError(
            f"no module {module!r} in {folder} (looked for {module.replace('.', '/')}.py there and in src/); "
            'pass one, or set [tool.refract] module = "..." in pyproject.toml'
        )
    if not re.search(r"^\s*(async\s+)?def\s+handler\s*\(|^\s*handler\s*=", source.read_text(), re.M):
        raise BuildError(f"{source} defines no handler: add `def handler(inv: refract.Invocation): ...`")

    wit = find_wit()
    componentize = find_componentize_py()
    output = output if output.is_absolute() else folder / output
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="refract-build-") as work:
        Path(work, "refract_entry.py").write_text(_ENTRY.format(module=module))
        # The entry first, then the app's folders, this SDK, the interpreter's site-packages.
        python_path = [work, *map(str, dirs), str(_SDK_DIR.parent), *_site_packages()]
        partial = output.with_name(output.name + ".partial")
        command = [componentize, "-d", str(wit), "-w", WORLD, "componentize", "refract_entry"]
        for p in python_path:
            command += ["-p", p]
        command += ["-o", str(partial)]
        if quiet:
            command.insert(1, "--quiet")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        result = subprocess.run(command, cwd=folder, env=env)
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise BuildError(f"componentize-py failed ({result.returncode}) for {source}")
        partial.replace(output)
    size = output.stat().st_size
    print(
        f"refract-build: {output} ({size} bytes; componentize-py {time.monotonic() - started:.1f} s)",
        file=sys.stderr,
    )
    return output


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="refract-build",
        description="Build a Python automation into a WebAssembly component (componentize-py).",
    )
    parser.add_argument("module", nargs="?", help="the module defining handler (default: [tool.refract] module, else app)")
    parser.add_argument("-o", "--out", default=DEFAULT_OUTPUT, help=f"where to write the component (default {DEFAULT_OUTPUT})")
    parser.add_argument("-C", "--dir", default=".", help="the automation's folder (default: the current one)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no componentize-py progress output")
    args = parser.parse_args(argv)
    try:
        build(Path(args.dir), args.module, Path(args.out), quiet=args.quiet)
    except BuildError as e:
        _fail(str(e))


if __name__ == "__main__":
    main()
