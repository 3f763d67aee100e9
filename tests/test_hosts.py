"""HostQueues and StartRate: the scheduler's bookkeeping, driven directly (no I/O)."""
import random

import pytest

from batchfetch.hosts import HostQueues, StartRate


def drain(queues, now=0.0):
    taken = []
    while (next_job := queues.take(now)) is not None:
        taken.append(next_job)
    return taken


def test_oldest_job_first_across_hosts():
    queues = HostQueues(per_host=10)
    for job in ["a1", "b1", "a2", "c1", "b2"]:
        queues.add(job[0], job)
    assert [job for _, job in drain(queues)] == ["a1", "b1", "a2", "c1", "b2"]
    assert len(queues) == 0


def test_a_host_at_its_cap_does_not_block_the_others():
    queues = HostQueues(per_host=2)
    for job in ["a1", "a2", "a3", "a4", "b1", "a5", "b2"]:
        queues.add(job[0], job)
    assert [job for _, job in drain(queues)] == ["a1", "a2", "b1", "b2"]
    queues.finished("a")
    assert queues.take(0.0) == ("a", "a3")
    assert queues.take(0.0) is None


def test_a_cooling_host_waits_and_the_others_go_on():
    queues = HostQueues(per_host=10)
    for job in ["a1", "a2", "b1"]:
        queues.add(job[0], job)
    assert queues.take(0.0) == ("a", "a1")
    queues.finished("a")
    queues.cool_down("a", until=5.0)
    assert drain(queues, now=1.0) == [("b", "b1")]
    assert queues.next_cool_down_end(now=1.0) == 5.0
    assert queues.take(now=5.0) == ("a", "a2")
    assert queues.next_cool_down_end(now=5.0) is None


def test_jobs_added_while_a_host_cools_down_wait_for_its_end():
    queues = HostQueues(per_host=10)
    queues.cool_down("a", until=2.0)
    queues.add("a", "a1")
    assert queues.take(now=1.0) is None
    assert queues.next_cool_down_end(now=1.0) == 2.0
    # The end passing between two looks at the queues is reported at once.
    assert queues.next_cool_down_end(now=2.5) == 2.5
    assert queues.take(now=2.5) == ("a", "a1")


@pytest.mark.parametrize("seed", range(5))
def test_a_freed_slot_goes_to_a_host_with_an_idle_connection(seed):
    """10 hosts interleaved, 20 slots, completions in a random order (far more jitter
    than a real run): no new connection while a host with an idle one has work waiting,
    unless the job that needs it is more than a round older than that work."""
    rng = random.Random(seed)
    queues = HostQueues(per_host=1000, connections=20)
    for n in range(600):
        queues.add(n % 10, n)
    in_flight = [queues.take(0.0) for _ in range(20)]
    connections = {host: 2 for host in range(10)}
    while in_flight:
        host, _ = in_flight.pop(rng.randrange(len(in_flight)))
        queues.finished(host)
        busy = {h: sum(1 for h2, _ in in_flight if h2 == h) for h in range(10)}
        idle_with_work = [h for h in range(10)
                          if busy[h] < connections[h] and queues._waiting.get(h)]
        started = queues.take(0.0)
        if started is None:
            continue
        in_flight.append(started)
        if busy[started[0]] >= connections[started[0]]:
            if idle_with_work:
                # Allowed only for a job more than a round (20) older than theirs.
                youngest_allowed = min(queues._waiting[h][0][0] for h in idle_with_work) - 20
                assert started[1] < youngest_allowed, (started, idle_with_work)
            else:
                # Or at the tail, once a host has run dry with its connections idle.
                assert len(queues._waiting) < 10
            connections[started[0]] += 1
    assert sum(connections.values()) > 20  # new connections were needed: the checks ran


def test_heaps_stay_small_on_a_long_run_below_the_connection_budget():
    queues = HostQueues(per_host=4, connections=200)
    for n in range(50):
        queues.add("a", n)
    drain(queues)
    for n in range(50, 100_000):
        queues.finished("a")
        queues.add("a", n)
        assert queues.take(0.0) is not None
    assert len(queues._ready) + len(queues._warm_ready) < 200


def test_idle_hosts_are_forgotten():
    queues = HostQueues(per_host=10, connections=4)
    for n in range(1000):
        queues.add(n, n)
        host, _ = queues.take(0.0)
        queues.finished(host)
    assert not queues._warm and not queues._in_flight and not queues._waiting


def test_start_rate_spaces_starts_evenly():
    limiter = StartRate(2.0)
    assert limiter.wait_time(now=10.0) == 0.0
    limiter.started(now=10.0)
    assert limiter.wait_time(now=10.1) == pytest.approx(0.4)
    limiter.started(now=10.5)
    assert limiter.wait_time(now=10.5) == pytest.approx(0.5)


def test_a_host_with_idle_connections_cannot_keep_an_older_job_waiting():
    """One host fills the connection budget and always has an idle connection and more
    jobs; another host's job, older than all but a round of them, still starts soon."""
    queues = HostQueues(per_host=1000, connections=4)
    for n in range(4):
        queues.add("a", f"a{n}")
    started = drain(queues)  # a's pools now hold the whole budget
    queues.add("c", "c0")
    for n in range(4, 100):
        queues.add("a", f"a{n}")
    order = []
    for _ in range(20):
        host, _job = started.pop(0)
        queues.finished(host)
        next_job = queues.take(0.0)
        started.append(next_job)
        order.append(next_job[1])
    assert "c0" in order[:6], order
