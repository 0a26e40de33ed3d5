"""The tasktypes benchmark: task types against plain calls, and against
Ladon 1.0.7, over real HTTP on loopback.

    python -m bench                    # everything; table + bench/results.json
    python -m bench --quick --only latency,empty

``bench/run.py`` holds the parts and what they measure; ``bench/servers.py``
starts the servers; ``bench/client.py`` is the raw HTTP client of the timing
loops; ``bench/tasks.py`` the bench-only task type; ``bench/ladon_service.py``
the Ladon service.
"""
