"""The sandbox's pass-through list against the ``workflows`` package as it is.

``workflows.sandbox.passthrough_modules`` derives the list from the package's sources. These
tests check it by importing the modules: every pure module is passed through (so one added or
split off needs no change), none that defines or imports a workflow is, and no passed-through
module keeps state that changes: a passed-through module is one object shared by every workflow
run of a process, so state in it would leak from one run into another.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Any

import workflows
from workflows import sandbox
from workflows.collection import LoanCollection

MUTABLE = (list, dict, set, bytearray)
MUTATORS = {
    "append",
    "extend",
    "insert",
    "pop",
    "popitem",
    "remove",
    "clear",
    "update",
    "setdefault",
    "add",
    "discard",
    "sort",
    "reverse",
    "__setitem__",
    "__delitem__",
}


def package_modules() -> dict[str, ModuleType]:
    found = {"workflows": workflows}
    for info in pkgutil.walk_packages(workflows.__path__, "workflows."):
        found[info.name] = importlib.import_module(info.name)
    return found


def defines_workflow(module: ModuleType) -> bool:
    return any(
        isinstance(value, type)
        and value.__module__ == module.__name__
        and hasattr(value, "__temporal_workflow_definition")
        for value in vars(module).values()
    )


def uses_workflow_module(module: ModuleType, workflow_modules: set[str]) -> bool:
    """Whether the module's globals hold a workflow module or anything defined in one."""
    for value in vars(module).values():
        if isinstance(value, ModuleType):
            if value.__name__ in workflow_modules:
                return True
        elif getattr(value, "__module__", None) in workflow_modules:
            return True
    return False


def test_every_pure_module_is_passed_through_and_nothing_else() -> None:
    modules = package_modules()
    is_package = {name for name, module in modules.items() if hasattr(module, "__path__")}
    defining = {name for name, module in modules.items() if defines_workflow(module)}
    assert LoanCollection.__module__ in defining
    # Reaching a workflow module through other modules of the package counts too.
    tainted = set(defining)
    while True:
        more = {
            n for n, m in modules.items() if n not in tainted and uses_workflow_module(m, tainted)
        }
        if not more:
            break
        tainted |= more
    pure = set(modules) - tainted - is_package - sandbox.NOT_WORKFLOW_CODE
    passed = set(sandbox.passthrough_modules())

    assert pure <= passed, f"pure modules not passed through: {sorted(pure - passed)}"
    assert not passed & defining, f"passed through, but define a workflow: {passed & defining}"
    assert not passed & tainted, f"passed through, but use a workflow module: {passed & tainted}"
    assert not passed & is_package, "a package passed through passes all its modules through"
    assert set(sandbox.REQUIRED_PASSTHROUGH) <= passed
    assert LoanCollection.__module__ in sandbox.workflow_modules()


def test_the_strict_sandbox_passes_only_what_it_must() -> None:
    strict = sandbox.strict_workflow_runner().restrictions.passthrough_modules
    default = sandbox.workflow_runner().restrictions.passthrough_modules
    ours = {name for name in default if name.startswith("workflows")}
    assert ours == set(sandbox.passthrough_modules())
    assert {name for name in strict if name.startswith("workflows")} == set(
        sandbox.REQUIRED_PASSTHROUGH
    )


def read_only_tables() -> dict[str, Any]:
    """Every mutable value a passed-through module binds in its source, at module level or in a
    class body, by ``module.name`` or ``module.Class.name``: tables that must never change."""
    tables: dict[str, Any] = {}
    for name in sandbox.passthrough_modules():
        module = importlib.import_module(name)
        tree = ast.parse(Path(module.__file__ or "").read_text())
        for owner, body, prefix in [(module, tree.body, name)] + [
            (getattr(module, node.name), node.body, f"{name}.{node.name}")
            for node in tree.body
            if isinstance(node, ast.ClassDef)
        ]:
            for target in assigned_names(body):
                value = getattr(owner, target, None)
                if isinstance(value, MUTABLE):
                    tables[f"{prefix}.{target}"] = value
                elif dataclasses.is_dataclass(value) and not isinstance(value, type):
                    params = getattr(type(value), "__dataclass_params__", None)
                    assert params is not None and params.frozen, (
                        f"{prefix}.{target} is an instance of a mutable dataclass"
                    )
    return tables


def assigned_names(body: list[ast.stmt]) -> set[str]:
    names = set()
    for node in body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign | ast.AugAssign)
            else []
        )
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def test_passed_through_modules_keep_no_state_that_changes() -> None:
    """No ``global`` statement in them, and no code of the package mutates one of their tables
    (``TABLE[k] = v``, ``TABLE.update(...)``, ``del TABLE[k]``, ``TABLE += ...``). The replay
    tests check the same tables against the corpus replayed (``tests/replay``)."""
    tables = read_only_tables()
    table_names = {key.rsplit(".", 1)[1] for key in tables}
    passed = {
        Path(importlib.import_module(name).__file__ or "") for name in sandbox.passthrough_modules()
    }
    offences = []
    for path in Path(workflows.__path__[0]).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Global) and path in passed:
                offences.append(f"{path.name}:{node.lineno} global {', '.join(node.names)}")
            mutated = mutated_name(node)
            if mutated in table_names:
                offences.append(f"{path.name}:{getattr(node, 'lineno', '?')} mutates {mutated}")
    assert offences == []


def mutated_name(node: ast.AST) -> str | None:
    """The name (or attribute) a statement or call mutates in place, if any."""

    def base(expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Name):
            return expr.id
        if isinstance(expr, ast.Attribute):
            return expr.attr
        return None

    if isinstance(node, ast.Assign | ast.Delete):
        for target in node.targets:
            if isinstance(target, ast.Subscript):
                return base(target.value)
    if isinstance(node, ast.AugAssign):
        return base(node.target)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in MUTATORS
    ):
        return base(node.func.value)
    return None


def snapshot_of_tables() -> dict[str, Any]:
    """A deep copy of every passed-through module's tables, to compare after replays."""
    return copy.deepcopy(read_only_tables())


def test_the_workflow_module_is_compiled_once_per_process() -> None:
    """A re-import in a sandbox finds the compiled code in memory, whatever bytecode caching."""
    sandbox.workflow_runner()  # installs the finder
    finder = next(f for f in __import__("sys").meta_path if isinstance(f, sandbox._CompiledOnce))
    name = LoanCollection.__module__
    parent = importlib.import_module(name.rpartition(".")[0])
    first = finder.find_spec(name, parent.__path__)
    second = finder.find_spec(name, parent.__path__)
    assert first is not None and second is not None
    assert first.loader is not None and second.loader is not None
    code = first.loader.get_code(name)  # type: ignore[attr-defined]
    assert code is not None and second.loader.get_code(name) is code  # type: ignore[attr-defined]
    assert finder.find_spec("workflows", None) is None, "the package is found as before"
