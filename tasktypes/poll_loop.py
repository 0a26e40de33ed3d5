"""The dev server's event loop: waitress's ``wasyncore`` loop over ``poll()``,
asking only the connections that may have changed what they wait for.

    loop = PollLoop(server)            # a waitress server and its socket map
    while running:
        loop.once(timeout=1.0)

wasyncore's ``poll2`` (read from waitress 3.0.2) builds a new ``poll``
object every time it wakes and calls ``readable()`` and ``writable()`` of
every connection: ~4,300 instructions a connection, twice a request (the
request arriving, then the handler thread's trigger). So every open
connection taxed every request, idle ones too: counted under callgrind
behind the do-nothing application, 373 k instructions a request alone,
442 k beside 8 idle keep-alive connections, 1.23 M beside 100; the
connection limit is ~1,000.

Here one ``poll`` object lives as long as the loop, and a connection is
asked again only when something may have changed its answers:

- it had an event (the loop read, wrote or closed it);
- it was just added to the map or removed from it (``changed``, called
  by the server's channels);
- it has had a request in a handler thread (``busy``) and the trigger
  fired. A handler thread changes a connection's answers outside this
  loop (it queues and sends the response itself, takes its request off
  the list, may send a "100 Continue" for the next one, may close it) and
  pulls the trigger when it has finished a request or when output waits
  to be sent. A connection leaves ``busy`` only when asked after no
  thread has work left on it (``_settled``, read before its answers);
  one closed by a thread is also ``changed``;
- the server's ``maintenance`` ran (each ``cleanup_interval``): it marks
  idle and overdue connections to be closed, so every connection is asked.

The listener is asked every time (its ``readable()`` is what runs
``maintenance``, and it stops accepting at the connection limit); the
trigger once (always readable, never writable). Events are handled by
wasyncore's own ``readwrite``.

waitress's internals read here, as 3.0.2 has them (pyproject.toml keeps
waitress below 4): the server's ``_map``, ``_fileno``, ``trigger`` (its
``_fileno``) and ``next_channel_cleanup``; a channel's ``requests``,
``request`` (its ``expect_continue``), ``sent_continue`` and ``accepting``;
that handler threads pull the trigger at the end of ``service()`` and
from ``write_soon()``; ``devserver._Channel`` calls ``changed`` from
``add_channel`` and ``del_channel``.
"""

import select

from waitress import wasyncore

_READ = select.POLLIN | select.POLLPRI


class PollLoop:
    """wasyncore's loop for one waitress server, asking only what changed."""

    def __init__(self, server):
        self.server = server
        self.map = server._map  # fd -> dispatcher: the listener, the trigger, channels
        self.pollster = select.poll()
        self.registered = {}  # fd -> the flags poll() watches it for
        self.dirty = set(self.map)  # fds whose flags must be asked again
        self.busy = set()  # fds of channels with a request in a handler thread
        self.listener = server._fileno
        self.trigger_fd = server.trigger._fileno  # always readable, never writable

    def changed(self, fd):
        """A connection on ``fd`` was added to the map or removed from it
        (from any thread: only ``once`` touches the other sets)."""
        self.dirty.add(fd)

    def once(self, timeout):
        """Wait up to ``timeout`` seconds for events and handle them."""
        cleanup = self.server.next_channel_cleanup
        self._ask(self.listener)  # its readable() may run maintenance
        if self.server.next_channel_cleanup != cleanup:
            self.dirty.update(list(self.map))
        while self.dirty:
            self._ask(self.dirty.pop())  # pop: a thread may add meanwhile
        for fd, flags in self.pollster.poll(int(timeout * 1000)):
            obj = self.map.get(fd)
            if obj is None:
                self.dirty.add(fd)  # closed meanwhile: unregistered next time
                continue
            wasyncore.readwrite(obj, flags)
            if fd == self.trigger_fd:
                self.dirty.update(self.busy)
            else:
                self.dirty.add(fd)
                if getattr(obj, "requests", None):  # the listener has none
                    self.busy.add(fd)

    def _ask(self, fd):
        obj = self.map.get(fd)
        flags = 0
        if obj is not None:
            # Whether a handler thread may still change it, read BEFORE its
            # flags: once it may not, the flags read next are final.
            settled = fd not in self.busy or _settled(obj)
            if obj.readable():
                flags = _READ
            if obj.writable() and not obj.accepting:
                flags |= select.POLLOUT
            if settled:
                self.busy.discard(fd)
        else:
            self.busy.discard(fd)
        if flags == self.registered.get(fd, 0):
            return
        if flags:
            self.pollster.register(fd, flags)  # registers or modifies
            self.registered[fd] = flags
        else:
            self.pollster.unregister(fd)
            del self.registered[fd]


def _settled(channel):
    """True once no handler thread has work left on ``channel``: no request
    of it in a thread, and no "100 Continue" that the thread which finished
    the last one would still send for the next (waitress 3.0.2's
    ``HTTPChannel.service`` sends it after taking its request off the list,
    then pulls the trigger)."""
    if channel.requests:
        return False
    request = channel.request  # the next one, being read
    return request is None or not request.expect_continue or channel.sent_continue
