"""The documentation generator (tools/param_docs.py), imported as a module for the docs tests."""
from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from ..conftest import REPO


@pytest.fixture(scope="session")
def param_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("param_docs", REPO / "tools" / "param_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
