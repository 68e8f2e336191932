"""Task families (session, CTR, purchase, ...): one module each, found by name.

Every module in this package that defines ``FAMILY`` (a :class:`~seqrec.families.base.Family`)
is a family; :func:`get_family` imports it on first use. Adding a family means adding a
module here and registering its models and datasets; the driver is not edited.
"""

from __future__ import annotations

import importlib
import pkgutil

from seqrec.errors import ConfigError
from seqrec.families.base import Family

_NOT_FAMILIES = {"base"}


def family_names() -> list[str]:
    """The families available (the modules of this package that are not helpers)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_FAMILIES
                  and not m.name.startswith("_"))


def get_family(name: str) -> Family:
    """The family called ``name``; a ConfigError naming the known ones otherwise."""
    if name not in family_names():
        raise ConfigError(f"unknown task family {name!r}; known families: {family_names()}")
    fam = getattr(importlib.import_module(f"{__name__}.{name}"), "FAMILY", None)
    if not isinstance(fam, Family):
        raise ConfigError(f"seqrec.families.{name} does not define FAMILY")
    return fam
