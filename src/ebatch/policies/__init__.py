"""Batching policies, registered by name (``sequential``, ``padding``, ``cellular``, ``ebatch``, ...).

Every module of this package is imported here, so a policy registers itself with ``@register`` in its
own file and nothing else has to name it: adding a policy means adding one file.
"""

import importlib
import pkgutil

from ebatch.policies.base import Policy, available, get, parameters, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Policy", "available", "get", "parameters", "register"]
