"""The Faust internals the worker overrides or depends on are the ones they were checked against."""

from __future__ import annotations

import hashlib
import importlib
import inspect

import faust
import pytest

from agents.glue.faust import CHECKED, FAUST_VERSION


def _resolve(qualname: str) -> object:
    _module, _, _rest = qualname.partition(".")
    parts = qualname.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(qualname)


def test_the_installed_faust_is_the_version_checked():
    assert faust.__version__ == FAUST_VERSION, (
        f"faust-streaming {faust.__version__} is installed, agents.glue.faust was checked against {FAUST_VERSION}: "
        "re-read every entry of agents.glue.faust.CHECKED against the new Faust, then update it"
    )


@pytest.mark.parametrize(
    "checked", CHECKED, ids=lambda c: c.qualname.rsplit(".", 2)[-2] + "." + c.qualname.rsplit(".", 1)[-1]
)
def test_each_internal_the_worker_depends_on_is_unchanged(checked):
    source = inspect.getsource(_resolve(checked.qualname))  # type: ignore[arg-type]
    assert hashlib.sha256(source.encode()).hexdigest() == checked.sha256, (
        f"{checked.qualname} changed in the installed Faust; the worker depends on it: {checked.why}"
    )
