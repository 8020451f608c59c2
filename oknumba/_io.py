"""The one atomic-write helper: every file a run writes (config, summary, params, metrics
rewrite, checkpoint) goes through :func:`atomic_write`, so an interruption or a crash never
leaves a half-written file in place of a good one."""
import os


def atomic_write(path, write, binary=False, durable=False):
    """Write ``path`` through a temporary file in the same folder and ``os.replace`` it over
    the old one. ``write(f)`` fills the open file; ``durable`` also flushes it to disk
    (``fsync``) before the rename (checkpoints). The temporary file is removed on error."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb" if binary else "w") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def remove_stale_temporaries(folder, names):
    """Remove ``<name>.tmp-<pid>`` files in ``folder`` left by a writer that was killed (its
    process no longer exists); returns the paths removed. A live writer's file is kept."""
    removed = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return removed
    for entry in entries:
        base, sep, pid = entry.rpartition(".tmp-")
        if not sep or base not in names or not pid.isdigit():
            continue
        if int(pid) != os.getpid() and _process_alive(int(pid)):
            continue
        path = os.path.join(folder, entry)
        try:
            os.remove(path)
            removed.append(path)
        except OSError:
            pass
    return removed


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # exists, owned by someone else
        return True
    return True
