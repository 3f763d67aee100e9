"""The ways a batch runs: each engine takes ``(index, item)`` pairs and yields a
:class:`~batchfetch.engines.base.RowEvent` per row (see ``base.py`` for the seam).

- :class:`~batchfetch.engines.local.LocalEngine`: in this process, on gevent.
- :class:`~batchfetch.engines.processes.ProcessEngine`: ``workers=N`` processes, each
  running a LocalEngine.
"""
