"""``python -m oknumba.profile``: the profiler's command line (:func:`oknumba.profile.main`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
