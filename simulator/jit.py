"""``njit`` that imports numba and compiles on the first call, so importing a module with kernels costs nothing.

Importing numba and readying its compiler take 0.6-0.8 s of CPU; ``tfysim --help``, ``validate`` and runs whose
features need no compiled kernel should not pay it. Use it like numba's decorator: ``@njit(cache=True)``. A kernel
may call another one from compiled code: numba types a lazy kernel as its compiled dispatcher.
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

    @property
    def dispatcher(self):
        """numba's dispatcher of the function (created, not yet compiled, on first use)."""
        if self.compiled is None:
            self.compiled = _numba_njit()(**self.options)(self.py_func)
        return self.compiled

    @property
    def _numba_type_(self):
        # numba's typeof() reads this attribute: a kernel calling this one from compiled code calls the dispatcher
        return self.dispatcher._numba_type_

    @property
    def targetoptions(self) -> dict[str, Any]:
        # numba's inlining pass reads the options (``inline="always"``) of the called function from here
        return self.dispatcher.targetoptions

    def __call__(self, *args: Any) -> Any:
        return (self.compiled or self.dispatcher)(*args)


@functools.cache
def _numba_njit():
    """numba's ``njit``, with its CPU target readied once (the implementation registries numba loads on a first
    compile or cache load: half a second) and the objects of both kept out of the garbage collector's way."""
    import threading

    from numba import njit as numba_njit
    from numba.core.registry import cpu_target

    from simulator.memory import imports_done

    cpu_target.target_context.refresh()
    if threading.current_thread() is threading.main_thread():
        imports_done()  # not from a Dask worker thread: the other partitions' data is alive there
    return numba_njit
