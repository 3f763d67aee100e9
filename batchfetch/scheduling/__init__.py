"""When each attempt may start, and what follows its answer: per-host queues and limits
(``hosts.py``), retry decisions (``retry.py``), each host's pace (``pace.py``, measured by
``_meter.py``), why a row waited (``waits.py``), and the politeness that ties them
and robots.txt (``batchfetch/robots.py``, which the transports fetch) to a run
(``politeness.py``).
"""
