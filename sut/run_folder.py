"""A run's own folder: refused before anything loads when it cannot be made, claimed new, and its ``run.json``
written at the start and, however the run ends, at the end.

Runs never write into an existing folder. While the run lasts, a hidden file
holds :data:`RESERVE_BYTES` of disk in the folder, freed to write the final
``run.json`` on a disk that filled during the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from common.errors import InferenceFailedError, RunInterrupted
from readback.run_files import RESERVE_FILE, RUN_RECORD_FILE
from readback.run_record import RunRecord
from sut.config import DEFAULT_RESULTS_DIR, RunConfig, RunError
from sut.executor import Executor

log = logging.getLogger(__name__)

RESERVE_BYTES = 256 * 1024


def _output_exists(path: Path) -> RunError:
    if path.is_symlink() and not path.exists():
        return RunError(f"output folder {path} is a link to {os.readlink(path)}, which does not exist; a run's folder "
                        "must be new: choose another --output-dir, or remove the link")
    return RunError(f"output folder {path} already exists; runs never overwrite earlier results: choose another --output-dir")


def _cannot_create(path: Path, error: OSError) -> RunError:
    return RunError(f"cannot create the run folder {path}: {error.strerror or error}. Pass an --output-dir in a folder "
                    "you can write to (or run from one, for the default results/)")


def new_run_dir(config: RunConfig) -> Path:
    """The run's folder, created empty: ``--output-dir`` (which must not exist), else a new
    ``results/<UTC time>-<scenario>-<kind>`` (``-2``, ``-3``, ... for runs started in the same second).
    :class:`RunError` when it exists or cannot be created."""
    if config.output_dir is not None:
        run_dir = Path(config.output_dir)
        if os.path.lexists(run_dir):  # a dangling link too
            raise _output_exists(run_dir)
        try:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            run_dir.mkdir()
        except FileExistsError:
            raise _output_exists(run_dir) from None
        except OSError as error:
            raise _cannot_create(run_dir, error) from None
        return run_dir
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = DEFAULT_RESULTS_DIR / f"{stamp}-{config.scenario}-{config.kind}"
    run_dir, suffix = base, 1
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                run_dir.mkdir()
                return run_dir
            except FileExistsError:  # another run started in the same second
                suffix += 1
                run_dir = base.with_name(f"{base.name}-{suffix}")
    except OSError as error:
        raise _cannot_create(run_dir, error) from None


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def refuse_unusable_output(config: RunConfig) -> None:
    """Refuse an output folder that exists or cannot be created, before anything is loaded (the folder
    itself is claimed later, so that a run that fails to load leaves none)."""
    target = Path(config.output_dir) if config.output_dir is not None else DEFAULT_RESULTS_DIR / "new-run"
    if config.output_dir is not None and os.path.lexists(target):
        raise _output_exists(target)
    ancestor = _nearest_existing(target.parent)
    if not ancestor.is_dir():
        raise RunError(f"cannot create the run folder {target}: {ancestor} is a file, not a folder. Pass another "
                       "--output-dir")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise RunError(f"cannot create the run folder {target}: {ancestor} is not writable. Pass an --output-dir in "
                       "a folder you can write to")


def peak_rss_bytes() -> int:
    """The most resident memory this process has used so far (bytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@contextlib.contextmanager
def recording(record: RunRecord, run_dir: Path, executor: Executor) -> Iterator[None]:
    """Write ``record`` as ``running`` now, and at the end as ``finished``, ``failed`` with the error, or
    ``interrupted`` (:class:`RunInterrupted`); the cluster's faults so far go into a failed run's record."""
    started = time.perf_counter()
    with open(run_dir / RESERVE_FILE, "wb") as stream:
        stream.write(b"\0" * RESERVE_BYTES)
    try:
        record.write(run_dir)
        yield
    except BaseException as error:
        record.cluster = executor.cluster() or record.cluster
        record.status = "failed"
        if isinstance(error, RunInterrupted):
            error.run_dir, record.status = run_dir, "interrupted"
        record.error = str(error) if isinstance(error, InferenceFailedError) else f"{type(error).__name__}: {error}"
        record.wall_seconds = record.wall_seconds or round(time.perf_counter() - started, 2)
        record.peak_rss_bytes = peak_rss_bytes()
        _write_final_record(record, run_dir)
        raise
    record.status = "finished"
    _write_final_record(record, run_dir, must_succeed=True)


def _write_final_record(record: RunRecord, run_dir: Path, *, must_succeed: bool = False) -> None:
    """Write the run's last record and drop the space reserve; on a full disk the reserve makes room for it.
    If even that fails, say where the run stands (and raise the error when ``must_succeed``)."""
    reserve = run_dir / RESERVE_FILE
    try:
        try:
            record.write(run_dir)
        except OSError:
            reserve.unlink(missing_ok=True)
            record.write(run_dir)
    except OSError as error:
        log.error("cannot record the run's end in %s (%s): its run.json still says 'running'; the run %s",
                  run_dir / RUN_RECORD_FILE, error.strerror or error, record.status)
        if must_succeed:
            raise
    finally:
        reserve.unlink(missing_ok=True)
