"""When each attempt may start, and what follows its answer: per-host queues and limits
(``hosts.py``), retry decisions (``retry.py``), each host's pace (``pace.py``, measured by
``_meter.py``), why a row waited (``waits.py``), robots.txt (``robots.py``), and the
politeness that ties them to a run (``politeness.py``).
"""
