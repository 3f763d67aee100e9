"""How one attempt goes on the wire: the session and its per-run settings
(``session.py``), one attempt under its deadline (``attempt.py``), what each redirect
hop carries (``hops.py``), and the fast path (``fastpath.py``, with ``wire.py``'s
cheaper header parsing) beside requests' own.
"""
