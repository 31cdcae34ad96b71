"""herald's scenarios through python-socketio 5.x (Socket.IO v5, Engine.IO v4), sync client.

Credentials as 5.x sends them: the token in the CONNECT packet's auth (`{"token": ...}`) on
/public, the private key as `{"key": ...}` on /private. `connect()` waits for the namespace
(`wait=True`, the default); on a refusal it closes the Engine.IO connection itself and raises.
Usage: see scenarios.py.
"""

import socketio

import scenarios
from scenarios import WAIT_S, ClientBase, Failure, Refused


class Client(ClientBase):
    def make_sio(self):
        self.disconnect_reasons = []
        sio = socketio.Client(
            reconnection=False,
            request_timeout=WAIT_S,
            engineio_logger=self.engine_log.logger,
        )
        sio.on("disconnect", self.disconnect_reasons.append, namespace=self.namespace)
        return sio

    def _connect(self, auth):
        try:
            self.sio.connect(
                self.url,
                auth=auth,
                transports=self.transports,
                namespaces=[self.namespace],
                socketio_path=self.path,
                wait_timeout=WAIT_S,
            )
        except socketio.exceptions.ConnectionError as err:
            if self.refusal is not None:
                raise Refused(self.refusal, str(err)) from err
            raise Failure(f"connecting to {self.namespace} at {self.url} failed: {err}") from err

    def connect_public(self, token):
        self._connect({"token": token})

    def connect_private(self, key):
        self._connect({"key": key})

    def call(self, event, data):
        return self.sio.call(event, data, namespace=self.namespace, timeout=WAIT_S)

    def state(self):
        return {
            "connected": self.sio.connected,
            "engine": self.sio.eio.state,
            "disconnect_reasons": self.disconnect_reasons,
        }


if __name__ == "__main__":
    scenarios.main(Client)
