"""The tasktypes benchmark: what tasktypes' calls cost the server against a
plain call, a do-nothing application and Ladon 1.0.7 behind the same
server, and its Redis queue against RQ.

    python -m bench                    # everything; tables + bench/results.json
    python -m bench --quick --only polls,queue

``bench/cli.py`` runs the parts; one module per part (``polls``,
``queueing``, ``empty``, ``update_progress``, ``lookup``); the processes it
starts in ``servers`` (``httpd`` serves Ladon and the do-nothing application,
``venvs`` makes Ladon's and RQ's environments); ``procstat`` reads CPU from
/proc and pins; ``client`` and ``load`` are the client side; ``report``
judges the targets and prints the tables. ``python -m bench.inprocess``
measures CPU per call inside the application, ``python -m
bench.servers_compare`` the dev server against cheroot.
"""
