"""The workflow sandbox as this project needs it. Workers and replayers both use it.

The sandbox imports a workflow's module afresh for every workflow run (every history a replay
replays, every run a worker starts or takes back into its cache), and with it every module that
module imports unless it is *passed through*: shared with the host, imported once per process.
Those re-imports were most of what a replayed history cost. Two things keep them cheap:

- **Pure modules are passed through.** Every module of the ``workflows`` package is, except the
  ones that define a workflow (``@workflow.defn``), import one (directly or through another
  module), or are packages (passing a package through would pass all its modules through). The
  list is derived from the package's sources (``passthrough_modules``), so a module added or
  split off is passed through without a change here; ``tests/unit/test_sandbox.py`` checks the
  derived list against the package: no passed-through module defines a workflow or holds state
  that changes. The SDK recommends passing known-deterministic modules through for performance.
  The price: a non-deterministic call (``datetime.now()``, module-level ``random``) in a
  passed-through module is no longer caught by the sandbox, since that module's globals are the
  host's. ``strict_workflow_runner`` passes through only what must be, and the replay tests
  replay the whole corpus with it too, so such a call still fails CI.
- **The workflow modules are compiled once per process.** Where Python writes no bytecode
  (``PYTHONDONTWRITEBYTECODE``, ``-B``, a read-only install) every re-import compiled the source
  again: about 12 ms for the workflow module alone. The sandbox's imports of this package find
  the compiled code in memory instead (``_CompiledOnce``), keyed by the file's path, size and
  modification time; the module is still executed afresh for every run.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.abc
import importlib.machinery
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import CodeType, ModuleType

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PACKAGE = "workflows"
PACKAGE_DIR = Path(__file__).parent

# Must be passed through, pure or not. Data types shared with the host: loaded fresh in the
# sandbox they would bind their ``datetime`` fields to the sandbox's guarded proxy of
# ``datetime``, which the payload converter does not recognise as ``datetime``, so such fields
# could not be decoded. The machine module is pure too, but building its compound states calls
# python-statemachine's i18n, which resolves paths: it is defined once, outside the sandbox.
REQUIRED_PASSTHROUGH = (
    "workflows.types",
    "workflows.commands",
    "workflows.queue",
    "workflows.strategy",
    "workflows.machine",
)

# Modules of the package that workflow code never imports: this one (the runner's set-up).
NOT_WORKFLOW_CODE = frozenset({"workflows.sandbox"})


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox of workers and ``overdue replay``: the pure workflow modules passed through.

    The default restrictions proxy ``zoneinfo.ZoneInfo`` (to guard its cache-clearing methods),
    and ``datetime.astimezone`` refuses a proxied zone. Zones are read-only data from ``tzdata``.
    """
    return _runner(passthrough_modules())


def strict_workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox with only ``REQUIRED_PASSTHROUGH`` passed through: every other workflow
    module is imported afresh in it, so a non-deterministic call anywhere in them is caught.
    Slower; ``overdue replay --strict-sandbox`` and the replay tests use it."""
    return _runner(REQUIRED_PASSTHROUGH)


def _runner(passthrough: Sequence[str]) -> SandboxedWorkflowRunner:
    _CompiledOnce.install()
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*passthrough)
    return SandboxedWorkflowRunner(
        restrictions=dataclasses.replace(
            restrictions,
            invalid_module_members=restrictions.invalid_module_members.with_child_unrestricted(
                "zoneinfo", "ZoneInfo"
            ),
        )
    )


@functools.cache
def passthrough_modules() -> tuple[str, ...]:
    """``REQUIRED_PASSTHROUGH`` and every pure module of the package, sorted.

    Pure: a plain module (not a package) that neither defines a workflow class nor imports,
    directly or through other modules of the package, one that does. Read from the sources,
    without importing them; imports under ``if TYPE_CHECKING:`` count too (to be safe).
    """
    sources = _package_sources()
    imports = {name: _imported(name, tree, sources) for name, tree in sources.items()}
    tainted = {name for name, tree in sources.items() if _defines_workflow(tree)}
    grew = True
    while grew:  # everything that reaches a workflow module, through any path
        reached = {name for name, targets in imports.items() if targets & tainted}
        grew = not reached <= tainted
        tainted |= reached
    pure = {
        name
        for name in sources
        if name not in tainted and name not in NOT_WORKFLOW_CODE and not _is_package(name, sources)
    }
    return tuple(sorted(pure | set(REQUIRED_PASSTHROUGH)))


def workflow_modules() -> tuple[str, ...]:
    """Every module of the package that is imported afresh for each run (not passed through)."""
    passed = set(passthrough_modules())
    return tuple(sorted(set(_package_sources()) - passed - NOT_WORKFLOW_CODE))


def _package_sources() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
        if any(not part.isidentifier() for part in parts):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join((PACKAGE, *parts))
        found[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return found


def _is_package(name: str, sources: dict[str, ast.Module]) -> bool:
    return any(other.startswith(name + ".") for other in sources)


def _defines_workflow(tree: ast.Module) -> bool:
    """Whether a class in the module is decorated ``@workflow.defn`` (or ``@defn``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if (isinstance(target, ast.Attribute) and target.attr == "defn") or (
                    isinstance(target, ast.Name) and target.id == "defn"
                ):
                    return True
    return False


def _imported(name: str, tree: ast.Module, sources: dict[str, ast.Module]) -> set[str]:
    """The package's modules whose names ``name`` binds, anywhere in it (functions included).

    ``from workflows.a import b`` imports ``workflows.a.b`` when that is a module, else a name of
    ``workflows.a``. The parent packages an import runs are not counted: what they import is not
    what this module uses.
    """
    package = name if _is_package(name, sources) else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in sources else base)
    return {target for target in found if target in sources} - {name}


class _CompiledOnce(importlib.abc.MetaPathFinder):
    """Finds the package's modules as the path finder does, with a loader that keeps each
    module's compiled code in memory, so that a re-import in a sandbox does not compile again."""

    _installed = False
    _lock = threading.Lock()

    @classmethod
    def install(cls) -> None:
        with cls._lock:
            if not cls._installed:
                sys.meta_path.insert(0, cls())
                cls._installed = True

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(PACKAGE + ".") or path is None:
            return None  # the package itself is found as before (an editable install's finder)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader:
            return spec
        spec.loader = _CachedCodeLoader(spec.loader.name, spec.loader.path)
        return spec


_CODE: dict[tuple[str, int, int], CodeType] = {}


class _CachedCodeLoader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname: str) -> CodeType:
        stat = os.stat(self.path)
        key = (self.path, stat.st_size, stat.st_mtime_ns)
        code = _CODE.get(key)
        if code is None:
            code = super().get_code(fullname)
            if code is None:  # pragma: no cover - a source file always has code
                raise ImportError(f"no code for {fullname}", name=fullname)
            _CODE[key] = code
        return code
