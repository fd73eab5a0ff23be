"""Strict YAML: safe loading that refuses a key given twice in one mapping (plain PyYAML keeps the last).

Used for every YAML file a user writes: hardware presets (accelerator and host) and sweep specs.
"""

from __future__ import annotations

import copy
import functools

import yaml

__all__ = ["DuplicateKeyError", "load"]


class DuplicateKeyError(ValueError):
    """A mapping gives ``key`` twice; ``line`` (1-based) is the second time."""

    def __init__(self, key, line: int) -> None:
        super().__init__(f"duplicate key {key!r} (line {line})")
        self.key, self.line = key, line


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """PyYAML's safe loader (LibYAML's parser when PyYAML has it: the same documents, parsed several times
    faster) whose mappings raise :class:`DuplicateKeyError`."""


def _unique_keys(loader: _Loader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise DuplicateKeyError(key, key_node.start_mark.line + 1)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_keys)


def load(text: str):
    """The YAML document in ``text``; raises ``yaml.YAMLError`` when malformed, :class:`DuplicateKeyError`.

    A text is parsed once per process (the last 32 kept; PyYAML's pure-Python parser takes tens of
    milliseconds per preset, and ``ebatch.simulate`` reads its preset twice); each call gets its own copy.
    """
    return copy.deepcopy(_parsed(text))


@functools.lru_cache(maxsize=32)
def _parsed(text: str):
    return yaml.load(text, Loader=_Loader)
