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
