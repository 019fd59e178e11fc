"""Every demo lossviz knows, by name: one declaration each (:class:`Demo`), registered with :func:`register`.

The built-in loss families and the formula are modules of this package; a file of your own code registers its
demo when :mod:`lossviz.usercode` loads it; a test or a plugin registers its own in one call. Importing this
package imports no TensorFlow (the declarations import Keras lazily).
"""

from __future__ import annotations

from ..knobs import SettingError
from .demo import Context, Demo, Page, View  # noqa: F401  (the package's names)
from . import custom, edge_of_stability, max_mse, policy_value, sparse_penalty, two_branch

DEMOS: dict[str, Demo] = {}


def register(demo: Demo) -> Demo:
    """Add (or replace) a demo under its name; returns it."""
    DEMOS[demo.name] = demo
    return demo


def get_demo(name: str) -> Demo:
    """The registered demo of ``name``; an unknown one raises a ``SettingError`` naming those allowed."""
    found = DEMOS.get(name)
    if found is None:
        file = isinstance(name, str) and name.partition(":")[0].endswith(".py")
        hint = " (a file of your own code is loaded by lossviz.usercode.load first)" if file else ""
        raise SettingError(f"unknown demo {name!r}; allowed: {', '.join(names())} or a file path.py[:NAME]{hint}")
    return found


def names() -> tuple[str, ...]:
    """The demos a person names by their name (the built-in ones and any registered since), not files."""
    return tuple(name for name in DEMOS if not name.partition(":")[0].endswith(".py"))


for _family in (policy_value, two_branch, sparse_penalty, max_mse, edge_of_stability, custom):
    register(_family.DEMO)

BUILT_IN = tuple(DEMOS)  # the families and the formula, in the navigation's order
