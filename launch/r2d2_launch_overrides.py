"""Which launch arguments override r2d2_node's parameters file; shared by the launch files.

Kept free of the launch library (and of torch) so that it loads fast and is tested without either.
"""
from __future__ import annotations

# Launch arguments that, when given, override the parameter of the same name in params_file.
OVERRIDABLE = ("model", "device")


def given_overrides(arguments: dict[str, str]) -> dict[str, str]:
    """The arguments the user gave: an empty value means "not given", so params_file's value stands."""
    return {name: value for name, value in arguments.items() if value.strip()}
