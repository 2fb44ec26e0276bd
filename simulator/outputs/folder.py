"""One output folder per run: a run is built in a fresh sibling folder and swapped in by rename, so ``--out`` always
holds one whole run (never this run's summary beside the previous run's configs), and where it may be.

The swap is two renames: ``<out>`` to ``<out>.previous`` (the run before, kept for comparison; the one before that is
removed), then the new folder to ``<out>``. A run killed in between leaves ``<out>.previous`` and no ``<out>``, never a
mixture. Building folders of killed runs (``.<out>.tfysim-<pid>-*``) are removed by the next run.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from simulator.errors import InputError

#: Files that mark a folder as a tfysim run (so ``--out ~`` is refused instead of moved aside).
RUN_FILES = ("summary.json", "rejects.jsonl")
_BUILDING = re.compile(r"^\.(?P<name>.+)\.tfysim-(?P<pid>\d+)-[^/]+$")


def _roots(paths: Iterable[str | Path]) -> list[Path]:
    """The folders traffic paths read from: a directory itself, a glob's fixed leading folder; files have none."""
    roots = []
    for raw in paths:
        text = str(raw)
        if any(ch in text for ch in "*?["):
            fixed = text[: min(text.index(ch) for ch in "*?[" if ch in text)]
            roots.append(Path(fixed if fixed.endswith(os.sep) else os.path.dirname(fixed) or "."))
        elif Path(text).is_dir():
            roots.append(Path(text))
    return roots


def _inside(path: Path, root: Path) -> bool:
    path, root = path.resolve(), root.resolve()
    return path == root or root in path.parents


def check_out_folder(out: str | Path, traffic: Iterable[str | Path]) -> None:
    """Refuse an output folder inside a traffic folder or glob (the next run would read this run's outputs)."""
    for root in _roots(traffic):
        if _inside(Path(out), root):
            raise InputError(f"--out {out}: is inside the traffic path {root}, so the next run would read this "
                             "run's outputs as traffic. Write the outputs somewhere else.")


def repository_root(start: str | Path = ".") -> Path:
    """The git work tree holding ``start`` (the nearest folder with ``.git``), else ``start`` itself."""
    start = Path(start).resolve()
    return next((p for p in (start, *start.parents) if (p / ".git").exists()), start)


def check_inside_repository(traffic: Iterable[str | Path], root: Path) -> None:
    """Refuse traffic paths that resolve (symlinks followed) outside ``root``: what ``tfysim gate`` reads in CI."""
    for raw in traffic:
        text = str(raw)
        targets = ([Path(p) for p in glob.glob(text, recursive=True)] + _roots([text])
                   if any(ch in text for ch in "*?[") else [Path(text)])
        for target in targets:
            if not _inside(target, root):
                raise InputError(f"traffic path {text}: resolves outside the repository ({root}). tfysim gate reads "
                                 "traffic from the repository only; pass --allow-outside to read it anyway.")


def _is_run_folder(folder: Path) -> bool:
    if folder.is_symlink():
        return True  # the link itself is moved aside; its target is never touched
    return not any(folder.iterdir()) or any((folder / name).is_file() for name in RUN_FILES)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    """Remove a file, a symlink (not its target) or a folder tree (symlinks inside are unlinked, never followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


@contextlib.contextmanager
def run_folder(out: str | Path) -> Iterator[Path]:
    """Yield a fresh folder beside ``out`` to write a run into; on success swap it in as ``out`` (the previous run
    becomes ``<out>.previous``), on failure remove it and leave ``out`` as it was."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file, not a folder.")
    if out.is_dir() and not _is_run_folder(out):
        raise InputError(f"--out {out}: holds files that are not a tfysim run (no {' or '.join(RUN_FILES)}); name a "
                         "new or empty folder.")
    parent = out.parent
    for ancestor in (out, *out.parents):  # the nearest existing one must be a folder
        if ancestor.exists():
            if not ancestor.is_dir():
                raise InputError(f"--out {out}: {ancestor} is a file, not a folder. Write somewhere writable.")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for stale in parent.glob(f".{glob.escape(out.name)}.tfysim-*"):
            m = _BUILDING.match(stale.name)
            if m and m["name"] == out.name and not _alive(int(m["pid"])):
                _remove(stale)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tfysim-{os.getpid()}-", dir=parent))
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write ({exc.strerror or exc}). Write somewhere writable.") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp creates 0700; an output folder is an ordinary folder
        yield staging
        try:
            if out.exists() or out.is_symlink():
                previous = parent / f"{out.name}.previous"
                _remove(previous)
                os.rename(out, previous)
            os.rename(staging, out)
        except OSError as exc:
            raise InputError(f"--out {out}: cannot replace the previous run ({exc.strerror or exc}).") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
