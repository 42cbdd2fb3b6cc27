"""Writing a numbered version folder so that no reader ever sees half of one.

A version is written into a hidden folder beside its final place, checked,
then renamed into place. TF Serving (and a device fetching LiteRT files)
loads only integer-named folders, so the dot-named one stays invisible, and
a failed check leaves nothing behind.
"""

import contextlib
import ctypes
import errno
import os
import shutil
import uuid

import tensorflow as tf

from mmkeras import savedmodel


class ExportError(RuntimeError):
    """An export failed a check; nothing was left in the export folder."""


def write_version(base_dir, version, write, *, overwrite=False):
    """Calls `write(folder, version)` on a hidden folder, then renames it to `base_dir/<version>`.

    Args:
        base_dir: the model's folder; created if missing.
        version: integer version; None: highest existing + 1.
        write: creates and fills the folder it is given; raise to leave nothing behind.
        overwrite: replace an existing version (atomically on Linux).

    Returns:
        The version folder's path.

    Example:
    >>> import tempfile
    >>> base = tempfile.mkdtemp()
    >>> def write(folder, version):
    ...     os.makedirs(folder)
    ...     open(os.path.join(folder, "model.txt"), "w").close()
    >>> path = write_version(base, None, write)
    >>> os.path.basename(path), os.listdir(path)
    ('1', ['model.txt'])
    """
    base_dir = os.fspath(base_dir)
    with clean_write_errors(base_dir):
        os.makedirs(base_dir, exist_ok=True)
    version = savedmodel.next_version(base_dir) if version is None else int(version)
    final_dir = os.path.join(base_dir, str(version))
    if os.path.exists(final_dir) and not overwrite:
        raise FileExistsError(f"Version {version} already exists at {final_dir}; pass overwrite=True "
                              f"or another version.")
    tmp_dir = os.path.join(base_dir, f".tmp-{version}-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp_dir, version)
        move_into_place(tmp_dir, final_dir, version)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return final_dir


@contextlib.contextmanager
def clean_write_errors(base_dir):
    """A full, read-only or missing export target is one clear ExportError
    (TensorFlow's file system raises its own error types, Python's OSError)."""
    try:
        yield
    except (OSError, tf.errors.OpError) as e:
        reason = getattr(e, "message", None) or getattr(e, "strerror", None) or str(e)
        raise ExportError(f"Could not write the export into {base_dir}: {reason}. Nothing was "
                          f"added there; earlier versions are untouched.") from e


def move_into_place(tmp_dir, final_dir, version):
    """Renames the finished export to its version folder.

    An existing version (overwrite=True) is swapped with the new one in one
    atomic step on Linux (`renameat2(RENAME_EXCHANGE)`), so a server always
    finds the old or the new complete version. Where the system cannot swap
    folders, the old one is renamed aside first: a moment without the version.
    """
    if os.path.exists(final_dir) and _exchange(tmp_dir, final_dir):
        return  # tmp_dir now holds the old version; write_version removes it
    old = None
    if os.path.exists(final_dir):
        old = f"{os.path.dirname(final_dir)}/.old-{version}-{uuid.uuid4().hex[:8]}"
        os.rename(final_dir, old)
    try:
        os.rename(tmp_dir, final_dir)
    except OSError as e:
        if old and not os.path.exists(final_dir):
            os.rename(old, final_dir)  # keep serving the old version
        raise FileExistsError(f"Could not move the export into {final_dir} ({e}); another export "
                              f"running? Export again with another version.") from e
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _exchange(path_a, path_b):
    """Atomically swaps two paths; False where the system cannot (not Linux,
    an old kernel or C library, a file system without the operation)."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2  # <fcntl.h>, <linux/fs.h>
    if renameat2(at_fdcwd, os.fsencode(path_a), at_fdcwd, os.fsencode(path_b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), path_b)
