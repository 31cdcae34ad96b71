"""herald's scenarios through python-socketio 4.x (Socket.IO v4, Engine.IO v3), sync client.

Socket.IO v4 has no CONNECT auth payload: credentials go as socket.io-client 2.x apps send
them, the token in the query string (`?token=...`) on /public, the private key as an
`Authorization: Bearer` header on /private. 4.x's `connect()` returns once Engine.IO is open
(the root namespace connects first); the namespace's connect or connect_error is awaited
here. Usage: see scenarios.py.
"""

from urllib.parse import urlencode

import socketio

import scenarios
from scenarios import WAIT_S, ClientBase, Failure


class Client(ClientBase):
    def make_sio(self):
        return socketio.Client(
            reconnection=False,
            request_timeout=WAIT_S,
            engineio_logger=self.engine_log.logger,
        )

    def _connect(self, url, headers):
        try:
            self.sio.connect(
                url,
                headers=headers,
                transports=self.transports,
                namespaces=[self.namespace],
                socketio_path=self.path,
            )
        except socketio.exceptions.ConnectionError as err:
            raise Failure(f"Engine.IO connection to {self.url} failed: {err}") from err
        self.await_namespace()

    def connect_public(self, token):
        self._connect(f"{self.url}?{urlencode({'token': token})}", {})

    def connect_private(self, key):
        self._connect(self.url, {"Authorization": f"Bearer {key}"})

    def call(self, event, data):
        return self.sio.call(event, data, namespace=self.namespace, timeout=WAIT_S)

    def state(self):
        return {"connected": self.sio.connected, "engine": self.sio.eio.state}


if __name__ == "__main__":
    scenarios.main(Client)
