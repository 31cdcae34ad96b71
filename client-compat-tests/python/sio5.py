"""herald's scenarios through python-socketio 5.x (Socket.IO v5, Engine.IO v4), sync client.

Credentials as 5.x sends them: the token in the CONNECT packet's auth (`{"token": ...}`) on
/public, the private key as `{"key": ...}` on /private.

`connect(wait=False)`, then the namespace's connect or connect_error is awaited here. With
`wait=True` a refused connect disconnects from inside connect(), and over long-polling the
refusal can come back on the GET while the POST carrying the CONNECT is still in flight: the
write loop then drops the CLOSE (see `ClientBase.disconnect`), and connect() blocks joining a
read loop whose GET the server answers only when it ends the session (herald: after
`limits.handshake_timeout`, 10 s). Usage: see scenarios.py.
"""

import socketio

import scenarios
from scenarios import WAIT_S, ClientBase, Failure


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
                wait=False,
            )
        except socketio.exceptions.ConnectionError as err:
            raise Failure(f"Engine.IO connection to {self.url} failed: {err}") from err
        self.await_namespace()

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
