"""``njit`` that imports numba and compiles on the first call, so importing a module with kernels costs nothing.

Importing numba takes 1-3 s on a loaded machine; ``tfysim --help``, ``validate`` and runs whose features need no
compiled kernel should not pay it. Use it like numba's decorator: ``@njit(cache=True)``. Kernels that call other
kernels from compiled code need numba's own ``njit`` (a caller compiles against a numba dispatcher).
"""

from __future__ import annotations

import functools
from typing import Any, Callable


def njit(*args: Callable, **options: Any):
    """``numba.njit(**options)`` applied at the first call of the decorated function."""
    if args and callable(args[0]):
        return LazyKernel(args[0], {})
    return lambda fn: LazyKernel(fn, options)


class LazyKernel:
    """A Python function compiled with numba when first called; ``py_func`` is the plain function."""

    def __init__(self, fn: Callable, options: dict[str, Any]) -> None:
        self.py_func = fn
        self.options = options
        self.compiled: Callable | None = None
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any) -> Any:
        if self.compiled is None:
            from numba import njit as numba_njit

            self.compiled = numba_njit(**self.options)(self.py_func)
        return self.compiled(*args)
