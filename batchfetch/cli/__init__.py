"""The ``batchfetch`` command, a thin face over the public API: ``command.py`` (flags to
options, input and output opened, exit codes), ``run.py`` (the consumer loop),
``flags.py`` (flags as API values, curl's habits), ``curl.py`` (curl's flags batchfetch
has no twin of), ``lines.py`` (the inputs: URL arguments, files, standard input),
``input_text.py`` (input decoded as text), ``streams.py`` (where rows go: pipes, full
disks, signals), ``progress.py``, ``help.py`` and ``demo.py`` (``batchfetch --demo``).
"""
from .command import main

__all__ = ["main"]
