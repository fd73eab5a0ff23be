"""Build, cache and load the compiled recurrence (``csrc/recurrence.cpp``) of the ``compiled`` backend.

The extension is C++ against ATen and the MKL inside ``libtorch_cpu``, built with the system C++ compiler
by ``torch.utils.cpp_extension.load`` (ninja) the first time it is needed: ``make setup`` builds it (so
``make test`` and ``make demo`` do), otherwise the first ``compiled`` executor does. Nothing is
downloaded. The build is cached in ``$EBATCH_EXTENSIONS_DIR`` (default ``$XDG_CACHE_HOME/ebatch/extensions``,
that is ``~/.cache/ebatch/extensions``), one folder per (source, torch version, CPU capability, flags),
so editing the source, upgrading torch or moving the cache to another CPU rebuilds instead of loading a
stale or illegal binary. A build takes about 30-60 s on 2 cores; loading a cached one well under 1 s.

:func:`load_extension` returns the module or raises :class:`CompileUnavailable` with a one-line reason
(torch missing, no compiler, a build error, or ``EBATCH_COMPILED=0``); :func:`build_info` says how the
last load went (:class:`BuildInfo`). ``python -m ebatch.runtime.compiled`` builds (or loads) and prints it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BuildInfo", "CompileUnavailable", "build_info", "cache_dir", "load_extension"]

SOURCE = Path(__file__).with_name("csrc") / "recurrence.cpp"
_CAPABILITY_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma"],
    "AVX2": ["-mavx2", "-mfma"],
}


class CompileUnavailable(RuntimeError):
    """The compiled recurrence cannot be built or loaded here; the message is one line saying why."""


@dataclass(frozen=True)
class BuildInfo:
    """How the extension was obtained: ``cached`` (an earlier build loaded) or built now in ``build_s``."""

    name: str
    directory: str
    capability: str
    cached: bool
    build_s: float  # wall time of this process's build or load


_state: dict[str, object] = {}


def cache_dir() -> Path:
    """Where builds are kept: ``$EBATCH_EXTENSIONS_DIR``, else ``$XDG_CACHE_HOME/ebatch/extensions``."""
    given = os.environ.get("EBATCH_EXTENSIONS_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ebatch" / "extensions"


def build_info() -> BuildInfo | None:
    """How this process got the extension (None before :func:`load_extension` succeeded)."""
    info = _state.get("info")
    return info if isinstance(info, BuildInfo) else None


def _ensure_ninja() -> None:
    """torch's JIT build runs ``ninja`` from PATH; the ``ninja`` wheel's binary is not on it in a venv."""
    if shutil.which("ninja"):
        return
    try:
        import ninja
    except ImportError:
        raise CompileUnavailable("ninja is not installed (pip install ninja, part of the torch extra)") from None
    os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


def load_extension():
    """The compiled module (``pack``, ``recur``), built or loaded once per process.

    Raises :class:`CompileUnavailable` (one-line message) when it cannot be had; a failure is remembered,
    so later calls raise at once instead of rebuilding.
    """
    if "module" in _state:
        return _state["module"]
    if "error" in _state:
        raise CompileUnavailable(str(_state["error"]))
    try:
        module = _build()
    except CompileUnavailable as exc:
        _state["error"] = exc
        raise
    _state["module"] = module
    return module


def _build():
    if os.environ.get("EBATCH_COMPILED", "1") == "0":
        raise CompileUnavailable("disabled by EBATCH_COMPILED=0")
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError:
        raise CompileUnavailable("torch is not installed (pip install 'ebatch[torch]')") from None
    _ensure_ninja()
    capability = torch.backends.cpu.get_cpu_capability()
    flags = ["-O3", *_CAPABILITY_FLAGS.get(capability, [])]
    if capability in _CAPABILITY_FLAGS:
        flags += [f"-DCPU_CAPABILITY={capability}", f"-DCPU_CAPABILITY_{capability}"]
    key = hashlib.sha256("|".join([SOURCE.read_text(), torch.__version__, capability, *flags]).encode())
    name = f"ebatch_recurrence_{key.hexdigest()[:12]}"
    directory = cache_dir() / name
    cached = any(directory.glob(f"{name}*.so"))
    start = time.perf_counter()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        module = cpp_extension.load(name=name, sources=[str(SOURCE)], extra_cflags=flags,
                                    build_directory=str(directory), verbose=False)
    except Exception as exc:  # a compiler error, a missing compiler, an unwritable cache, a bad link
        raise CompileUnavailable(f"building {SOURCE.name} failed: {_first_error(exc)} (cache {directory})") from None
    _state["info"] = BuildInfo(name, str(directory), capability, cached, time.perf_counter() - start)
    return module


def _first_error(exc: Exception) -> str:
    """The line of a build failure worth reading (the compiler's first ``error``), at most 160 characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() and not line.startswith("[")]
    text = (errors or lines or [type(exc).__name__])[0]
    return text if len(text) <= 160 else text[:157] + "..."


def main() -> int:
    """``python -m ebatch.runtime.compiled``: build (or load) the extension and say how long it took."""
    try:
        load_extension()
    except CompileUnavailable as exc:
        print(f"ebatch: compiled backend unavailable: {exc}; the torch executor will be used")
        return 0
    info = build_info()
    what = "loaded from cache" if info.cached else "built"
    print(f"ebatch: compiled recurrence {what} in {info.build_s:.1f} s ({info.capability}, {info.directory})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
