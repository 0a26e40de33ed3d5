"""The benchmark's report: the targets of issue #14 (and the older ones)
judged against the figures of one run, and the markdown tables that the
README's "Performance" section shows.

    results["targets"] = targets(results)
    print(markdown(results))

A target is "met", "missed", or "n/a" (not measured in this run: a part not
run, or a server unavailable); nothing here fails on a timing.
"""

CLIENT_LEVELS = ("1", "8")

#: Targets: JSON-RPC progress polls per server CPU-second against Ladon's,
#: SOAP polls against Ladon's SOAP, and server CPU per call against echo.
VS_LADON_JSONRPC = 1.5
VS_LADON_SOAP = 1.0
SUBMIT_X_ECHO = 1.15
POLL_X_ECHO = 1.10
REDIS_POLL_X_ECHO = 1.20
EMPTY_REDIS_MS = 5.0
UPDATE_PROGRESS_US = 2.0
LOOKUP_FLAT = 1.10

PROTOCOL_NAMES = {"jsonrpc": "JSON-RPC", "soap": "SOAP", "ladon": "JSON-RPC 1.0",
                  "ladon-soap": "SOAP 1.1", "noop": "-"}


def _levels(results, server, protocol, call):
    return results["polls"].get(server, {}).get(protocol, {}).get(call, {})


def targets(results):
    found = []

    def judge(name, values, good, aside=None):
        """``values``: [(where, measured)]; met when every one is good.
        ``aside``: a figure shown beside them that is not judged."""
        values = [(where, v) for where, v in values if v is not None]
        status = "n/a" if not values else (
            "met" if all(good(v) for _, v in values) else "missed")
        where = "; ".join("%s %s" % (where, _num(v)) for where, v in values) \
            or "not measured in this run"
        if aside:
            where += " (%s)" % aside
        found.append({"target": name, "status": status, "where": where,
                      "measured": {where: v for where, v in values}})

    def per_level(server, protocol, call, key, label=""):
        levels = _levels(results, server, protocol, call)
        return [("%s%s client%s:" % (label, n, "" if n == "1" else "s"),
                 levels.get(n, {}).get(key)) for n in CLIENT_LEVELS if n in levels]

    judge("JSON-RPC progress polls per server CPU-second >= %gx Ladon's" % VS_LADON_JSONRPC,
          per_level("tasktypes/thread", "jsonrpc", "progress", "x_ladon"),
          lambda v: v >= VS_LADON_JSONRPC, _by_instructions(results, "jsonrpc"))
    judge("SOAP progress polls per server CPU-second ahead of Ladon's SOAP (> %gx)"
          % VS_LADON_SOAP,
          per_level("tasktypes/thread", "soap", "progress", "x_ladon"),
          lambda v: v > VS_LADON_SOAP, _by_instructions(results, "soap"))
    judge("submit <= %.2fx echo's server CPU, thread store" % SUBMIT_X_ECHO,
          per_level("tasktypes/thread", "jsonrpc", "submit", "x_echo", "JSON-RPC ")
          + per_level("tasktypes/thread", "soap", "submit", "x_echo", "SOAP "),
          lambda v: v <= SUBMIT_X_ECHO)
    judge("progress poll <= %.2fx echo's server CPU, thread store" % POLL_X_ECHO,
          per_level("tasktypes/thread", "jsonrpc", "progress", "x_echo", "JSON-RPC ")
          + per_level("tasktypes/thread", "soap", "progress", "x_echo", "SOAP "),
          lambda v: v <= POLL_X_ECHO)
    judge("progress poll <= %.2fx echo's server CPU, Redis store" % REDIS_POLL_X_ECHO,
          per_level("tasktypes/redis", "jsonrpc", "progress", "x_echo", "JSON-RPC ")
          + per_level("tasktypes/redis", "soap", "progress", "x_echo", "SOAP "),
          lambda v: v <= REDIS_POLL_X_ECHO)
    redis_empty = results["empty"].get("tasktypes/redis", {})
    judge("empty Redis-store task, submit -> result <= %g ms (median)" % EMPTY_REDIS_MS,
          [("%s:" % mode, redis_empty.get(mode, {}).get("median_ms"))
           for mode in ("poll", "wait")], lambda v: v <= EMPTY_REDIS_MS)
    judge("update_progress <= %g us per call, Redis store" % UPDATE_PROGRESS_US,
          [("in-process:", results["update_progress"].get("redis", {}).get("us_per_call"))],
          lambda v: v <= UPDATE_PROGRESS_US)
    lookup = results["lookup"]
    judge("progress lookups flat from 10 to %s tasks (<= %.2fx)"
          % (lookup.get("fill", "many"), LOOKUP_FLAT),
          [("%s store:" % store, lookup.get(store, {}).get("ratio_median"))
           for store in ("thread", "redis")], lambda v: v <= LOOKUP_FLAT)
    return found


def _by_instructions(results, protocol):
    """Ladon's instructions per poll over ours (part ``instructions``), as
    text beside a target judged by server CPU, or None."""
    figures = results.get("instructions", {}).get("tasktypes/thread", {}).get(protocol, {})
    if "x_ladon" not in figures:
        return None
    return "by instructions: %s" % _num(figures["x_ladon"])


def _num(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, float):
        return "%.*f" % (digits, value)
    return str(value)


def _x(value):
    return "-" if value is None else "%.2f×" % value


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def polls_table(results):
    rows = []
    for server, protocols in results["polls"].items():
        for protocol, calls in protocols.items():
            for call, levels in calls.items():
                one, eight = levels.get("1", {}), levels.get("8", {})
                rows.append([
                    server, PROTOCOL_NAMES.get(protocol, protocol), call,
                    _num(one.get("server_us_per_call"), 0),
                    _num(eight.get("server_us_per_call"), 0),
                    _num(eight.get("calls_per_server_cpu_s"), 0),
                    "%s / %s" % (_x(one.get("x_echo")), _x(eight.get("x_echo")))
                    if call not in ("echo", "noop") else "",
                    "%s / %s" % (_x(one.get("x_ladon")), _x(eight.get("x_ladon")))
                    if "x_ladon" in eight or "x_ladon" in one else "",
                    _num(eight.get("us_above_floor"), 0) if server != "noop" else "",
                    _num(eight.get("process_us_per_call"), 0)
                    if server.endswith("/redis") else "",
                    _num(eight.get("redis_us_per_call"), 0) if "redis_us_per_call" in eight
                    else "",
                    "%s (%s)" % (_num(eight.get("client_us_per_call"), 0),
                                 _num(eight.get("client_busy"), 2))])
    return _table(["server", "protocol", "call", "server µs/call, 1 client",
                   "server µs/call, 8 clients", "calls per server CPU-s, 8 clients",
                   "× echo (1 / 8)", "× Ladon (1 / 8)", "µs above floor (8)",
                   "web process alone µs/call (8)", "Redis µs/call (8)", "client µs/call (busy), 8"], rows)


#: The rows of the user / system table: the floor and the progress polls.
SPLIT_ROWS = (("noop", "noop", "noop"), ("tasktypes/thread", "jsonrpc", "progress"),
              ("ladon", "ladon", "progress"), ("tasktypes/thread", "soap", "progress"),
              ("ladon", "ladon-soap", "progress"))


def split_table(results):
    """The web process's CPU per call as its own code's (user) and the
    kernel's for it (system), for the floor and the progress polls: what
    an application adds is user time; the kernel's share is the server's."""
    polls = results["polls"]
    floor = polls.get("noop", {}).get("noop", {}).get("noop", {})
    rows = []
    for server, protocol, call in SPLIT_ROWS:
        levels = polls.get(server, {}).get(protocol, {}).get(call)
        if not levels:
            continue
        row = [server, PROTOCOL_NAMES.get(protocol, protocol), call]
        for clients in ("1", "8"):
            f = levels.get(clients, {})
            row.append("%s / %s" % (_num(f.get("user_us_per_call"), 0),
                                    _num(f.get("system_us_per_call"), 0)))
        for clients in ("1", "8"):
            f, bare = levels.get(clients, {}), floor.get(clients, {})
            row.append(_num(f["user_us_per_call"] - bare["user_us_per_call"], 0)
                       if server != "noop" and "user_us_per_call" in f
                       and "user_us_per_call" in bare else "")
        rows.append(row)
    return _table(["server", "protocol", "call", "user / system µs, 1 client",
                   "user / system µs, 8 clients", "user µs above floor, 1 client",
                   "user µs above floor, 8 clients"], rows)


def queue_table(results):
    queue = results["queue"]
    rows = []
    for count in ("1", "2"):
        f = queue.get(count, {})
        if f:
            rows.append(["1 worker service (1 process); RQ: 1 worker" if count == "1" else
                         "%s worker services (1 process each); RQ: %s workers" % (count, count),
                         _num(f.get("tasktypes", {}).get("tasks_per_s"), 0),
                         "%s (%s)" % (_num(f.get("rq", {}).get("tasks_per_s"), 0),
                                      _x(f.get("x_rq"))),
                         "%s (%s)" % (_num(f.get("rq-simple", {}).get("tasks_per_s"), 0),
                                      _x(f.get("x_rq-simple")))])
    latency = queue.get("latency", {})
    if latency:
        rows.append(["empty task, submit → result, median ms"]
                     + [_num(latency.get(side, {}).get("median_ms"))
                        for side in ("tasktypes", "rq", "rq-simple")])
    tasks = results["settings"]["sizes"]["queue_tasks"]
    return _table(["{:,} empty tasks from 8 clients: tasks/s".format(tasks),
                   "tasktypes worker service",
                   "RQ, its default worker (tasktypes ×)", "RQ SimpleWorker (tasktypes ×)"],
                  rows)


def empty_table(results):
    rows = []
    for server, figures in results["empty"].items():
        rows.append([server, PROTOCOL_NAMES.get(figures["protocol"]),
                     "%s / %s" % (_num(figures.get("poll", {}).get("median_ms")),
                                  _num(figures.get("poll", {}).get("p99_ms"))),
                     _num(figures.get("poll", {}).get("result_calls_mean"), 1),
                     "%s / %s" % (_num(figures.get("wait", {}).get("median_ms")),
                                  _num(figures.get("wait", {}).get("p99_ms")))
                     if "wait" in figures else "-"])
    return _table(["server", "protocol", "polling: median / p99 ms", "result calls",
                   "m_wait: median / p99 ms"], rows)


def instructions_table(results):
    entry = results["instructions"]
    rows = []
    for server in ("tasktypes/thread", "ladon", "noop"):
        for protocol, f in entry.get(server, {}).items():
            rows.append([server, PROTOCOL_NAMES.get(protocol, protocol),
                         "{:,}".format(f["instructions_per_call"]),
                         "{:,}".format(f["above_floor"]) if "above_floor" in f else "",
                         "%s / %s" % (_x(f.get("x_ladon")), _x(f.get("x_ladon_above_floor")))
                         if "x_ladon" in f else ""])
    return _table(["server", "protocol (noop: sent that protocol's poll)",
                   "instructions per poll", "above the floor",
                   "Ladon's ÷ ours (whole / above the floor)"], rows)


def markdown(results):
    m, s = results["machine"], results["settings"]
    out = ["tasktypes benchmark: %s cores, %s, Python %s, scale %g, %s; load average "
           "%s at the start" % (m["nproc"], m["cpu"], m["python"], s["scale"],
                                s.get("pinning", "nothing pinned"), m["loadavg"])]
    if results["polls"]:
        out += ["", "**Server CPU per call**, each server in its own process behind the same "
                "dev server; × echo: server CPU per call against echo's on the same server; "
                "× Ladon: calls per server CPU-second against Ladon's same call and "
                "protocol; floor: the do-nothing application's µs", ""]
        out += polls_table(results)
        out += ["", "**User and system CPU** of the web process per call (the same "
                "rounds): what an application adds is its own code's (user) time", ""]
        out += split_table(results)
    if results["queue"]:
        out += ["", "**The queue** (Redis): tasktypes' worker service against RQ", ""]
        out += queue_table(results)
    if results["empty"]:
        out += ["", "**Empty task, submit → result**, one client, the server's own workers", ""]
        out += empty_table(results)
    if results["update_progress"]:
        out += ["", "**update_progress** in a tight loop, in-process", ""]
        out += _table(["store", "calls", "µs per call", "stale view, median / max ms"],
                      [[store, f["calls"], _num(f["us_per_call"], 3),
                        "%s / %s" % (_num(f.get("stale_median_ms")),
                                     _num(f.get("stale_max_ms")))]
                       for store, f in results["update_progress"].items()])
    if results["lookup"]:
        big = results["lookup"]["fill"]
        out += ["", "**Progress lookups** with 10 and %d finished tasks stored" % big, ""]
        out += _table(["store", "10: median µs", "%d: median µs" % big, "ratio"],
                      [[store, _num(f["10"]["median_us"], 0), _num(f[str(big)]["median_us"], 0),
                        _x(f["ratio_median"])]
                       for store, f in results["lookup"].items() if store != "fill"])
    if any(key != "calls" for key in results["instructions"]):
        out += ["", "**Instructions per progress poll** of a finished task, the whole "
                "server process under callgrind, %s polls after a warm-up, one client; "
                "floor: the do-nothing application sent the same bytes"
                % results["instructions"].get("calls"), ""]
        out += instructions_table(results)
        idle = results["instructions"].get("idle")
        if idle:
            out += ["", "The floor's JSON-RPC poll beside {} idle keep-alive connections: "
                    "{:,} instructions ({} the floor alone)".format(
                        idle["connections"], idle["instructions_per_call"],
                        _x(idle.get("x_floor")))]
    if results["targets"]:
        out += ["", "**Targets**", ""]
        out += _table(["target", "where it lands", ""],
                      [[t["target"], t["where"], t["status"]] for t in results["targets"]])
    if results["unavailable"]:
        out += ["", "Unavailable in this run:"]
        out += ["- %s: %s" % (name, reason.strip().replace("\n", " ")[:300])
                for name, reason in results["unavailable"].items()]
    return "\n".join(out)
