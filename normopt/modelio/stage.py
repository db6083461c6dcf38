"""Writing models atomically: staged beside the destination, moved into place whole, never over an input.

Outputs are written to a temporary file (new weights: a private folder) beside the destination and moved
into place by ``Staged.commit``, so a failed save leaves nothing half-written and an input is never
overwritten by accident.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import onnx_ir as ir

from normopt.choices import ExternalLayout
from normopt.errors import UsageError, option
from normopt.modelio.read import MAX_IR_VERSION, ProtoModel, cap_ir_version, external_files


@dataclass
class SaveInfo:
    """Where a model went and where its weights are."""

    path: Path
    data_files: list[Path]


@dataclass
class Staged:
    """A model written beside its destination (with new weights: in a private folder), not yet in place.

    ``commit`` moves the new data file first and the model last (a reader never finds a new model with
    old weights, or a model whose weights are missing); ``discard`` removes everything staged. Until
    one of them runs, nothing at the destination has changed.
    """

    folder: Path
    model_path: Path
    destination: Path
    staged_data: list[Path]
    data_files: list[Path]

    def commit(self, mode_like: Path | None = None) -> SaveInfo:
        """Move the staged files into place; the model gets ``mode_like``'s mode if given, else the umask's."""
        try:
            for staged in [*self.staged_data, self.model_path]:
                _chmod_new(staged)
            if mode_like is not None:
                os.chmod(self.model_path, stat.S_IMODE(mode_like.stat().st_mode))
            with signals_held():  # Ctrl-C / SIGTERM land after both renames, never between them
                for staged in self.staged_data:
                    os.replace(staged, self.destination.parent / staged.name)
                os.replace(self.model_path, self.destination)
        finally:
            self.discard()
        return SaveInfo(path=self.destination, data_files=self.data_files)

    def discard(self) -> None:
        """Remove whatever is still staged."""
        if self.folder.is_dir():
            shutil.rmtree(self.folder, ignore_errors=True)
        elif self.folder.exists():
            self.folder.unlink()


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP for the duration and deliver them on exit.

    Blocking them at the OS level is not enough: a signal that arrived just before has already tripped
    Python's flag, and its handler (raising KeyboardInterrupt) would run at the next bytecode, between two
    renames. So in the main thread the handlers themselves are swapped for one that only records the
    signal; on exit the old handlers come back and each recorded signal is raised again. Elsewhere (not
    the main thread) the signals are blocked with ``pthread_sigmask`` where the platform has it.
    """
    held: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    received: list[int] = []
    previous: dict[int, Any] = {}
    try:
        for signum in held:
            previous[signum] = signal.signal(signum, lambda number, _frame: received.append(number))
    except ValueError:  # not the main thread: Python handlers do not run here anyway
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        previous.clear()
    if previous:
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)
            for signum in dict.fromkeys(received):
                signal.raise_signal(signum)
        return
    try:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(held))
    except (AttributeError, ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _chmod_new(path: Path) -> None:
    """Give a file the mode a new file gets under the process umask (temp files start at 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def make_parents(destination: str | os.PathLike[str]) -> list[Path]:
    """Create the missing folders above ``destination`` (umask modes); return them, innermost first.

    Nothing is created when a folder cannot be (a file in the way, nowhere writable): that is a
    UsageError, before any work. ``remove_made`` takes the list back after a failure.
    """
    parent = Path(destination).parent
    missing = []
    for folder in (parent, *parent.parents):
        if folder.exists():
            break
        missing.append(folder)
    if not missing:
        return []
    check_writable(missing[-1], str(destination))  # also refuses a file where a folder would go
    parent.mkdir(parents=True)
    return missing


def remove_made(folders: list[Path]) -> None:
    """Remove the folders ``make_parents`` created, where they are still empty (innermost first)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def check_writable(folder: str | os.PathLike[str], what: str) -> None:
    """Refuse, before any work, a folder in which nothing can be created (read-only, no permission).

    ``folder`` may not exist yet: its nearest existing ancestor must be a directory one can write in.
    ``what`` names the output in the message (``--out normopt-out``).
    """
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"cannot write {what}: {probe} is not a directory")
    try:
        fd, name = tempfile.mkstemp(prefix=".normopt-probe-", dir=probe)
    except OSError as error:
        raise UsageError(f"cannot write {what}: nothing can be created in {probe} ({error.strerror})") from error
    os.close(fd)
    os.unlink(name)


def check_destination(
    destination: str | os.PathLike[str],
    source: str | os.PathLike[str] | None = None,
    *,
    in_place: bool = False,
    protected: set[Path] | None = None,
    data_name: str | None = None,
) -> None:
    """Refuse a destination that would overwrite what the input reads, or that cannot be a file.

    Args:
        destination: The model file to write.
        source: The input model; writing onto it needs ``in_place``.
        in_place: Allow ``destination`` to be ``source``.
        protected: Files the input reads (its external data): never overwritten, in place or not.
        data_name: The external data file the output would write beside ``destination``.

    Raises:
        UsageError: With what is wrong.

    """
    destination = Path(destination)
    if destination.is_dir():
        raise UsageError(f"output {destination} is a directory; give a file name such as {destination / 'model.onnx'}")
    parent = destination.parent
    for ancestor in (parent, *parent.parents):
        if ancestor.exists() and not ancestor.is_dir():
            raise UsageError(f"cannot write {destination}: {ancestor} is a file, not a directory")
    if not parent.is_dir():
        raise UsageError(f"output directory does not exist: {parent}")
    check_writable(parent, str(destination))
    target = destination.resolve()
    if source is not None and target == Path(source).resolve() and not in_place:
        raise UsageError(f"refusing to overwrite the input {destination}; pass {option('--in-place')} to allow it")
    guarded = {p.resolve() for p in protected or set()}
    if target in guarded:
        raise UsageError(f"refusing to write {destination}: it is an external data file the input model reads")
    reads = guarded | ({Path(source).resolve()} if source is not None else set())
    if data_name is not None and (parent / data_name).resolve() in reads:
        raise UsageError(
            f"refusing to write {parent / data_name}: the input reads it; write the output to another name or folder"
        )


def layout(model: ir.Model | ProtoModel, destination: Path, external: ExternalLayout) -> ExternalLayout:
    """The layout ``stage`` will use: ``auto`` resolved (see ``stage``); an impossible ``same`` refused."""
    existing = external_files(model)
    same_dir = all(f.parent.resolve() == Path(destination).parent.resolve() for f in existing)
    if external == "auto":
        external = "inline" if not existing else ("same" if same_dir else "new")
    if external == "same" and not same_dir:
        raise UsageError("external data can keep its layout only when the output is in the input's directory")
    return external


def stage(
    model: ir.Model | ProtoModel,
    destination: str | os.PathLike[str],
    *,
    external: ExternalLayout = "auto",
    data_name: str | None = None,
    created: list[Path] | None = None,
) -> Staged:
    """Write ``model`` into a private folder beside ``destination`` (see ``Staged``).

    Args:
        model: The model to write.
        destination: Where ``commit`` will put the ``.onnx``.
        external: ``same`` keeps references to the existing data files (output must sit in the same
            directory), ``new`` writes ``<data_name>`` beside the output, ``inline`` embeds every weight,
            ``auto`` picks ``same`` when possible, else ``new`` when the model has external weights.
        data_name: File name for ``new`` external data (default ``<output name>.data``).
        created: The staging path is appended here the moment it exists, so a caller whose ``try`` starts
            before this call can remove it (``discard_created``) however early a signal lands.

    """
    destination = Path(destination)
    if not destination.parent.is_dir():
        raise UsageError(f"output directory does not exist: {destination.parent}")
    existing = external_files(model)
    external = layout(model, destination, external)
    # New weights are staged with the model in a private folder (the model names them relatively); a model
    # that keeps or embeds its weights is staged beside the destination, where its references resolve.
    # Signals are held from creating it to recording it in ``created``: Ctrl-C / SIGTERM cannot land between.
    with signals_held():
        if external == "new":
            folder = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".staging", dir=destination.parent))
            tmp = folder / destination.name
        else:
            fd, name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".staging", dir=destination.parent)
            os.close(fd)
            folder = tmp = Path(name)
        if created is not None:
            created.append(folder)
    staged_data: list[Path] = []
    try:
        if not isinstance(model, ir.Model):
            if external not in ("same", "inline") or (external == "inline" and existing):
                raise UsageError("a protobuf-path model keeps its external data where it is (use external='same')")
            proto = model.finish()
            proto.ir_version = min(proto.ir_version or MAX_IR_VERSION, MAX_IR_VERSION)
            with open(tmp, "wb") as handle:
                handle.write(proto.SerializeToString())
            data_files = sorted(existing)
        elif external == "new":
            cap_ir_version(model)
            data_name = data_name or f"{destination.name}.data"
            ir.save(model, tmp, external_data=data_name, size_threshold_bytes=1024)
            staged_data = [folder / data_name] if (folder / data_name).exists() else []
            data_files = [destination.parent / data_name] if staged_data else []
        else:
            cap_ir_version(model)
            if external == "inline":
                ir.external_data.load_to_model(model)
            ir.save(model, tmp)
            data_files = sorted(existing) if external == "same" else []
    except BaseException:
        Staged(folder, tmp, destination, [], []).discard()
        raise
    return Staged(folder, tmp, destination, staged_data, data_files)


def save(
    model: ir.Model | ProtoModel,
    path: str | os.PathLike[str],
    *,
    source: str | os.PathLike[str] | None = None,
    external: ExternalLayout = "auto",
    in_place: bool = False,
    data_name: str | None = None,
) -> SaveInfo:
    """Write ``model`` to ``path`` atomically (``stage`` then ``commit``); see ``stage`` for the layouts.

    ``source``: the file the model was loaded from; writing onto it needs ``in_place``, and neither the
    model nor the data file may overwrite a file the model reads.
    """
    path = Path(path)
    name = data_name or f"{path.name}.data"
    writes_data = layout(model, path, external) == "new"
    check_destination(
        path, source, in_place=in_place, protected=external_files(model), data_name=name if writes_data else None
    )
    created: list[Path] = []
    try:
        staged = stage(model, path, external=external, data_name=name, created=created)
        return staged.commit(mode_like=path if in_place and path.exists() else None)
    except BaseException:
        discard_created(created)
        raise


def discard_created(created: list[Path]) -> None:
    """Remove staging paths ``stage`` recorded that are still there (after a failure or a signal)."""
    for path in created:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink(missing_ok=True)


ModelLike = str | os.PathLike[str] | onnx.ModelProto | ir.Model  # what the Python API takes as a model


@contextlib.contextmanager
def as_path(model: ModelLike, name: str = "model") -> Iterator[Path]:
    """A path for ``model``: the path itself, or a temporary file holding an in-memory model, removed after.

    An ``onnx.ModelProto`` or ``onnx_ir.Model`` is written with its weights inline (external tensors are
    read), into a private folder, so the API can treat every model as a file.
    """
    if isinstance(model, (str, os.PathLike)):
        yield Path(model)
        return
    folder = Path(tempfile.mkdtemp(prefix="normopt-model-"))
    try:
        path = folder / f"{name}.onnx"
        if isinstance(model, ir.Model):
            ir.save(model, path)
        elif isinstance(model, onnx.ModelProto):
            onnx.save(model, os.fspath(path))
        else:
            raise UsageError(
                f"not a model: {type(model).__name__} (give a path, an onnx.ModelProto or an onnx_ir.Model)"
            )
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
