"""herald's scenarios, run through a python-socketio client.

Shared by the drivers of both majors (sio5.py for python-socketio 5.x, sio4.py for 4.x): a
driver supplies a `Client` class that wraps its socketio.Client for one namespace (see
`ClientBase`), and calls `main(Client)`.

Usage: <driver> SCENARIO PARAMS_JSON

PARAMS_JSON holds `url` (herald's base URL), `path` (the Engine.IO path), `transport`
("websocket", "polling", or "upgrade": polling first, then the upgrade) and what the
scenario needs (tokens, key, workspaces, event names, data). Each step is printed on stdout
as one JSON line `{"step": ..., ...}`; a failure prints `{"step": "failed", "error": ...}`,
the same message on stderr, and exits 1. Some scenarios wait for a command line on stdin
(e.g. "disconnect"), so the test driving them can look at the server in between.
"""

import json
import logging
import os
import queue
import re
import sys
import threading
import traceback

# How long any single awaited thing (a connect, an ack, an event, a command) may take.
WAIT_S = 5.0

# How long a driver stays alive after its disconnect for the test to look at the server: longer
# than the test's own bounded wait, so that what the server shows comes from the disconnect.
EXIT_WAIT_S = 3 * WAIT_S

# Every client made, so that a failed run still closes its connections before it exits.
CLIENTS = []


class Failure(Exception):
    """A scenario did not go as expected; the message says what did not happen."""


class Refused(Exception):
    """The server refused the namespace connection; `data` is what connect_error carried."""

    def __init__(self, data, detail):
        super().__init__(detail)
        self.data = data


def step(name, **fields):
    """Prints one step as a JSON line (flushed: the test reads it while this runs)."""
    sys.stdout.write(json.dumps({"step": name, **fields}) + "\n")
    sys.stdout.flush()


class EngineLog(logging.Handler):
    """Collects what python-engineio logs about its transports: which handshake it made
    (polling or WebSocket, with the EIO version in the URL) and whether it upgraded."""

    PATTERNS = [
        (re.compile(r"^Attempting polling connection to .*[?&]EIO=(\d)"), "polling-handshake"),
        (re.compile(r"^Attempting WebSocket connection to .*[?&]EIO=(\d)"), "websocket-handshake"),
        (re.compile(r"^WebSocket upgrade was successful"), "upgraded"),
        (re.compile(r"^WebSocket upgrade failed"), "upgrade-failed"),
    ]

    def __init__(self):
        super().__init__(level=logging.INFO)
        self.steps = []
        self.eio = None
        self.logger = logging.Logger("engineio-transport-steps", level=logging.INFO)
        self.logger.addHandler(self)
        self.logger.propagate = False

    def emit(self, record):
        message = record.getMessage()
        for pattern, name in self.PATTERNS:
            match = pattern.search(message)
            if match:
                self.steps.append(name)
                if match.groups():
                    self.eio = match.group(1)


class Inbox:
    """Every event received on the namespace, in order, and a bounded wait for one of them."""

    def __init__(self):
        self.events = []
        self.changed = threading.Condition()

    def handler(self, name):
        def on_event(*args):
            with self.changed:
                self.events.append({"event": name, "args": list(args)})
                self.changed.notify_all()

        return on_event

    def wait_for(self, name, what):
        with self.changed:
            found = self.changed.wait_for(
                lambda: any(e["event"] == name for e in self.events), timeout=WAIT_S
            )
        if not found:
            raise Failure(
                f'timed out after {WAIT_S} s waiting for event "{name}" ({what}); '
                f"received: {json.dumps(self.events)[:500]}"
            )


class Commands:
    """Command lines from stdin, read by a thread so that a wait for one is bounded."""

    def __init__(self):
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in sys.stdin:
            self.lines.put(line.strip())
        self.lines.put(None)

    def expect(self, command, timeout=WAIT_S):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise Failure(f'no "{command}" command on stdin within {timeout} s') from None
        if line != command:
            raise Failure(f'expected the command "{command}" on stdin, got {line!r}')


def bounded(wait, what):
    """Runs a blocking `wait` (a join) for at most WAIT_S; fails naming `what` otherwise."""
    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(WAIT_S)
    if waiter.is_alive():
        raise Failure(f"timed out after {WAIT_S} s waiting for {what}")


class ClientBase:
    """One python-socketio client on one namespace. A driver's subclass builds `self.sio` in
    `make_sio()` and implements `connect_public(token)` and `connect_private(key)` (each
    starting the connection, then calling `await_namespace()`), `call(event, data)` and
    `state()`."""

    def __init__(self, params, namespace):
        self.url = params["url"]
        self.path = params["path"].strip("/")
        self.transports = {
            "websocket": ["websocket"],
            "polling": ["polling"],
            "upgrade": None,  # python-engineio's default: polling, then the upgrade
        }[params["transport"]]
        self.namespace = namespace
        self.engine_log = EngineLog()
        self.inbox = Inbox()
        self.sio = self.make_sio()
        self.answered = threading.Event()
        self.refusal = None
        self.sio.on("connect", self.answered.set, namespace=namespace)
        self.sio.on("connect_error", self._on_connect_error, namespace=namespace)
        CLIENTS.append(self)

    def _on_connect_error(self, data=None):
        self.refusal = data
        self.answered.set()

    def await_namespace(self):
        """Waits for the namespace's connect or connect_error; raises `Refused` on the latter."""
        if not self.answered.wait(WAIT_S):
            raise Failure(f"{self.namespace}: neither connect nor connect_error within {WAIT_S} s")
        if self.refusal is not None or self.namespace not in self.sio.namespaces:
            raise Refused(self.refusal, f"connect_error on {self.namespace}")

    def listen(self, names):
        """Records every arrival of each event name in `self.inbox`."""
        for name in names:
            self.sio.on(name, self.inbox.handler(name), namespace=self.namespace)

    def describe(self):
        """How the client is connected: its transport now, the handshake it made, the
        Engine.IO version it spoke, and whether it upgraded."""
        return {
            "namespace": self.namespace,
            "transport": self.sio.transport(),
            "eio": self.engine_log.eio,
            "engine_steps": self.engine_log.steps,
        }

    def disconnect(self):
        """`sio.disconnect()`, made sure to reach the server.

        python-engineio's write loop (3.x and 4.x) leaves as soon as the state is no longer
        "connected": packets queued behind a long-polling POST still in flight (such as the
        PONG to a PING) are dropped, DISCONNECT and CLOSE included, and the server learns of
        the disconnect only from its heartbeat. So the queue is drained first, and the process
        does not end before the write loop has sent what disconnect() queued."""
        eio = self.sio.eio
        if eio.state == "connected":
            bounded(eio.queue.join, "the Engine.IO send queue to drain before disconnect()")
        self.sio.disconnect()
        writer = getattr(eio, "write_loop_task", None)
        if writer is not None:
            bounded(writer.join, "the Engine.IO write loop to end after disconnect()")

    def checked_call(self, event, data):
        """`call` that fails with a clear message when no ack comes in time."""
        try:
            return self.call(event, data)
        except Exception as err:  # the majors raise different TimeoutError classes
            raise Failure(f'no ack for "{event}" on {self.namespace} within {WAIT_S} s: {err!r}') from err


# ------------------------------------------------------------------------------------------
# Scenarios. Each takes (params, Client, commands).


def connect(params, Client, commands):
    """/public with a valid token; stays connected until the "disconnect" command, then stays
    alive until the "exit" command (so that what the server sees comes from the disconnect,
    not from the process ending)."""
    client = Client(params, "/public")
    client.connect_public(params["token"])
    step("connected", **client.describe())
    commands.expect("disconnect")
    client.disconnect()
    step("disconnected", **client.state())
    commands.expect("exit", timeout=EXIT_WAIT_S)


def refused(params, Client, commands):
    """A refused handshake on `params["namespace"]` (token or key from params), then the
    client's state once it is done with the connection; stays alive until the "exit" command."""
    namespace = params["namespace"]
    client = Client(params, namespace)
    try:
        if namespace == "/private":
            client.connect_private(params["key"])
        else:
            client.connect_public(params["token"])
    except Refused as refusal:
        step("refused", error=refusal.data, detail=str(refusal))
    else:
        client.disconnect()
        raise Failure(f"connected to {namespace}, but a refusal was expected")
    # Both majors keep the Engine.IO connection after a refused namespace (5.x closes it only
    # inside connect(wait=True), which sio5.py does not use): the client ends it.
    client.disconnect()
    step("closed", **client.state())
    commands.expect("exit", timeout=EXIT_WAIT_S)


def receive(params, Client, commands):
    """/public: registers to each of `params["register"]` (printing each ack), then records
    the events named in `params["events"]` until `params["until"]` arrives."""
    client = Client(params, "/public")
    client.listen(params["events"])
    client.connect_public(params["token"])
    step("connected", **client.describe())
    for workspace in params["register"]:
        ack = client.checked_call("register", {"workspace": workspace})
        step("registered", workspace=workspace, ack=ack)
    step("ready")
    client.inbox.wait_for(params["until"], "the last event the test publishes")
    step("received", events=client.inbox.events)
    client.disconnect()
    step("disconnected", **client.state())


def backend_publish(params, Client, commands):
    """A /public client registers to `params["workspace"]`; a /private client of the same
    major publishes `params["event"]` with `params["data"]` there; the first receives it."""
    browser = Client(params, "/public")
    browser.listen([params["event"]])
    browser.connect_public(params["token"])
    step("connected", **browser.describe())
    ack = browser.checked_call("register", {"workspace": params["workspace"]})
    step("registered", workspace=params["workspace"], ack=ack)
    backend = Client(params, "/private")
    backend.connect_private(params["key"])
    step("backend-connected", **backend.describe())
    body = {"event": params["event"], "workspace": params["workspace"], "data": params["data"]}
    step("published", ack=backend.checked_call("publish", body))
    browser.inbox.wait_for(params["event"], "the backend's publish")
    step("received", events=browser.inbox.events)
    backend.disconnect()
    browser.disconnect()
    step("disconnected", browser=browser.state(), backend=backend.state())


SCENARIOS = {
    "connect": connect,
    "refused": refused,
    "receive": receive,
    "backend-publish": backend_publish,
}


def main(Client):
    if len(sys.argv) != 3 or sys.argv[1] not in SCENARIOS:
        sys.stderr.write(f"usage: {sys.argv[0]} {{{'|'.join(SCENARIOS)}}} PARAMS_JSON\n")
        sys.exit(2)
    scenario, params = SCENARIOS[sys.argv[1]], json.loads(sys.argv[2])
    code = 0
    try:
        scenario(params, Client, Commands())
    except Exception as err:
        message = str(err) if isinstance(err, (Failure, Refused)) else repr(err)
        if isinstance(err, Refused):
            message = f"refused: {message} ({json.dumps(err.data)})"
        step("failed", error=message)
        sys.stderr.write(f"{sys.argv[0]} {sys.argv[1]}: {message}\n")
        if not isinstance(err, (Failure, Refused)):
            traceback.print_exc()
        for client in CLIENTS:
            try:
                client.sio.disconnect()
            except Exception:  # already closed, or never connected
                pass
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # The clients' transport threads must not keep a failed run alive.
    os._exit(code)
