"""Every default and every bound of tasktypes, in one place.

The ``TASKTYPES_*`` settings (``tasktypes.config``) start from the values in
the first part; the rest are fixed bounds and timings, each with the reason
for its value. The README's "Configuration" and "What the service refuses,
and how" list the same values. This module imports nothing, so that any
module may read it (``config`` among them, without importing the whole
application).

    from tasktypes.defaults import RESULT_TTL, MAX_BODY
"""

# -- settings: TASKTYPES_<NAME> overrides each -----------------------------

STORE = "thread"
REDIS_URL = "redis://127.0.0.1:6379/0"
#: Seconds a finished task is kept.
RESULT_TTL = 3600
#: Bytes of a request body (HTTP 413 beyond, before it is read).
MAX_BODY = 10 * 1024 * 1024
#: Tasks running at once per server process.
WORKERS = 8
#: Longest m_wait, in seconds, per HTTP request (a batch of waits included).
MAX_WAIT = 30.0
#: m_wait calls in progress at once per application: half of the dev
#: server's threads, so that waits never take them all (Server.Busy beyond).
MAX_WAITERS = 16
#: Calls in one JSON-RPC batch (one -32600 for the whole batch beyond).
MAX_BATCH = 1000
#: Bytes of a result's JSON document (a larger result fails its task).
MAX_RESULT = 1024 * 1024
#: Seconds the worker service gives running tasks to finish after SIGTERM;
#: those still running then are stopped and failed.
WORKER_GRACE = 60.0
#: Service modules the worker service loads (comma-separated in
#: TASKTYPES_SERVICES): the shipped ones, next to wsgi.py.
SERVICES = "service"

# -- the application ---------------------------------------------------------

#: Target namespace of the services' WSDL.
TNS = "tasktypes"
#: Tasks that may wait as ``queued`` per worker before submissions get Busy.
QUEUE_PER_WORKER = 128

# -- texts a task keeps ------------------------------------------------------

#: Characters of a progress message a task reports (``update_progress``).
MAX_MESSAGE = 4096
#: Characters of an error text: what a failed task's clients see.
MAX_ERROR = 4096
#: Characters of a traceback written to the log for a failed task.
MAX_LOGGED = 16384
#: Lines of a task's own log it keeps (older ones are dropped), and the
#: most one ``m_log`` call returns.
MAX_LOG_LINES = 300
#: Characters of one line of a task's log.
MAX_LOG_CHARS = 1000
#: Characters of a task's arguments kept for the operator's view.
MAX_ARGUMENT_CHARS = 2000

# -- idempotent submission (tasktypes.idempotency) ------------------------------

#: Characters of an ``Idempotency-Key`` (HTTP 400 beyond): a UUID is 36, the
#: 255 of Stripe's keys leaves room for any scheme of the client's.
MAX_IDEMPOTENCY_KEY = 255
#: Seconds a retry (Redis store) waits for the task of a key whose first
#: submit claimed it but has not written the task yet; a claim still without
#: its task after that is taken over (its submit died in between). Above the
#: longest a submit's Redis calls take (two SOCKET_TIMEOUTs with the retry).
IDEMPOTENCY_PENDING = 10.0

# -- the operator's task list --------------------------------------------------
# Each store indexes the newest MAX_INDEXED submissions; one listing call
# reads at most MAX_SCANNED entries of that index, whatever the number of
# stored tasks.

MAX_INDEXED = 10_000
MAX_SCANNED = 1_000
#: Submissions over which the task list counts tasks per status.
COUNT_WINDOW = 500
#: Largest page of the list.
MAX_PAGE = 200
#: Largest result shown whole in a task's detail, in characters of JSON.
MAX_RESULT_CHARS = 100_000

# -- SOAP requests (tasktypes.xmlinput) ----------------------------------------

MAX_XML_ELEMENTS = 20_000
MAX_XML_ATTRIBUTES = 32  # on one element
#: Attributes and namespace declarations in a whole document, counted before
#: parsing: libxml2 builds a node of some 300 bytes for each, so a 10 MB body
#: of attributes would take 300 MB while it is parsed.
MAX_XML_TOTAL_ATTRIBUTES = 10_000
MAX_XML_DEPTH = 64
#: Characters of a name with its namespace: "{uri}local".
MAX_XML_NAME = 1024
#: Largest body answered directly (tasktypes.direct_soap): a control call
#: takes a few hundred bytes; anything larger is no plain control call, and
#: parsing it twice (the direct path's try, then spyne's) would double what
#: a large request costs.
MAX_DIRECT_SOAP_BODY = 4096

# -- JSON-RPC requests ---------------------------------------------------------

#: Objects and arrays a request may hold per call of its batch limit,
#: counted (as "{" and "[" bytes) before the body is parsed: 10 MB of
#: "[{},{},...]" would take the parser 200 MB and a second of CPU.
CONTAINERS_PER_CALL = 64

# -- memory ----------------------------------------------------------------------

#: Bytes of a request body after which its memory is handed back at once.
LARGE_BODY = 256 * 1024
#: Seconds between two such releases at most (their cost grows with the heap).
RELEASE_EVERY = 1.0

# -- the development server (tasktypes.devserver) ------------------------------

#: Threads running requests; each waiting m_wait holds one.
SERVER_THREADS = 32
#: Seconds a request may take to arrive whole, from its first byte (and a
#: new connection to send its first byte).
REQUEST_TIMEOUT = 30.0
#: Seconds an idle keep-alive connection is kept.
IDLE_TIMEOUT = 60
#: Most connections open at once (fewer if the process may open fewer files).
MAX_CONNECTIONS = 1000
#: Seconds between two checks of every connection for the two timeouts above.
CLEANUP_INTERVAL = 1

# -- the Redis store -----------------------------------------------------------

KEY_PREFIX = "tasktypes:"
#: Seconds between heartbeats of a server process, and until a silent one
#: counts as dead (its tasks failed, its slots free).
HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_TTL = 4.0
#: Seconds until the next try after a heartbeat that Redis refused.
HEARTBEAT_RETRY = 0.2
#: Seconds any Redis call may take before the request gets StoreUnavailable.
SOCKET_TIMEOUT = 2.0
#: Seconds between progress writes of a running body (the last value wins).
PROGRESS_INTERVAL = 0.1
#: Seconds a terminated worker process has to exit before it gets SIGKILL.
KILL_GRACE = 0.5
#: Finished tasks whose state a server process keeps, so that polling one
#: needs no Redis round trip (a finished task never changes again), and the
#: seconds each is kept at most (never past the task's own expiry).
FINISHED_CACHE_SIZE = 10_000
FINISHED_CACHE_SECONDS = 60.0
#: Tasks queued in Redis at once, deployment-wide (submissions get
#: Server.Busy beyond): the bound of the stream and the parked set together.
MAX_QUEUED = 10_000
#: Bytes of a Redis-store task's arguments as JSON: they wait in Redis
#: until a worker takes them, so MAX_QUEUED of them must fit there (with the
#: request limit alone, 10,000 bodies of 10 MB). Larger ones are a client
#: fault at submit.
MAX_ARGUMENTS = 1024 * 1024
#: Seconds a task may wait queued in Redis before its record expires (a
#: worker that reaches it later drops it).
MAX_QUEUED_WAIT = 7 * 24 * 3600
#: Seconds an entry may sit claimed by a consumer that has not started it
#: before another worker takes it over (XAUTOCLAIM): a worker service that
#: died between claiming and starting. A live one starts its entries within
#: milliseconds; a worker process starting takes a second or two at most.
CLAIM_IDLE = 10.0
#: Oldest parked tasks (their method was at its ``_max_running`` limit) a
#: worker looks at for one that may start now.
PARKED_SCAN = 100
#: Messages read from one worker before the supervisor looks at the others.
READS_PER_ROUND = 1000
