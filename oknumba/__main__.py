"""``python -m oknumba …`` is the ``oknumba`` command."""
import sys

from .cli import main

sys.exit(main())
