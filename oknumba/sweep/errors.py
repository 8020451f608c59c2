"""The sweep's errors: :class:`SweepError` (a sweep cannot start) and :class:`DaskMissing`."""
DASK_MISSING = 'oknumba sweep needs Dask: pip install "oknumba[sweep]"'


class SweepError(Exception):
    """A sweep cannot start: a bad grid, spec file, option, folder or cluster (one line)."""


class DaskMissing(SweepError):
    def __init__(self):
        super().__init__(DASK_MISSING)
