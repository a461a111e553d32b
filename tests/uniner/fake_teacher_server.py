"""A chat-completions server on loopback for the teacher-client tests: each request follows a scripted fault.

``FakeServer(script, tls=(certfile, keyfile))`` serves HTTPS. ``FakeServer(script)`` answers the i-th request with ``script[i]`` (then ``"ok"`` forever, or ``default``):

* ``ok``: a valid answer with ``usage``; ``nousage``: a valid answer without ``usage``
* ``slow``: a valid answer after 0.6 s; ``block``: hang until released, then drop the connection
* ``429`` / ``429:SECONDS`` (with ``Retry-After``), ``500``, ``503``, ``401``: that status
* ``malformed``, ``nochoices``: a 200 with a bad body
* ``redirect``: a 302 to :attr:`FakeServer.redirect_to` (another server's chat-completions address)
* ``truncated``: a 200 whose body stops halfway (the declared ``Content-Length`` is not reached)
* ``reset``: the connection is closed with a TCP reset before any answer; ``close``: closed without a reply
* ``trickle``: a valid answer sent one byte every 20 ms (about 4 s in all)
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def answer_for(passage: str) -> str:
    return f'[("{passage.split()[-1]}", "number")]'


class FakeServer:
    """A chat-completions server whose behaviour per request follows ``script`` (then ``default`` forever)."""

    def __init__(self, script=(), default: str = "ok", tls: tuple[str, str] | None = None):
        self.script = list(script)
        self.default = default
        self.lock = threading.Lock()
        self.requests: list[str] = []  # passage of every request received
        self.times: list[float] = []  # time.monotonic() of every request received
        self.answered: list[str] = []  # passage of every request answered with 200 and a valid body
        self.auth: list[str | None] = []
        self.methods: list[str] = []
        self.redirect_to = ""
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):  # a client that turned a redirected POST into a GET
                with server.lock:
                    server.requests.append("")
                    server.times.append(time.monotonic())
                    server.auth.append(self.headers.get("Authorization"))
                    server.methods.append("GET")
                self._send(200, b'{"choices": [{"message": {"content": "[(\\"evil\\", \\"answer\\")]"}}]}')

            def _send(self, status, payload, headers=()):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                passage = body["messages"][1]["content"].split("Passage: ", 1)[1]
                with server.lock:
                    server.requests.append(passage)
                    server.times.append(time.monotonic())
                    server.auth.append(self.headers.get("Authorization"))
                    server.methods.append("POST")
                    action = server.script.pop(0) if server.script else server.default
                if action == "block":  # hang until released, then drop the connection without an answer
                    server.release.wait(20)
                    return
                if action == "close":  # hang up without a reply: the client sees RemoteDisconnected
                    self.close_connection = True
                    return
                if action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    return
                if action == "slow":
                    time.sleep(0.6)
                if action.startswith("sleep:"):
                    time.sleep(float(action.split(":")[1]))
                if action.startswith("429"):
                    headers = [("Retry-After", action.split(":")[1])] if ":" in action else []
                    return self._send(429, b'{"error": "rate limited"}', headers)
                if action in ("500", "503", "401"):
                    return self._send(int(action), b'{"error": "boom"}')
                if action == "redirect":
                    return self._send(302, b"", [("Location", server.redirect_to)])
                usage = {} if action == "nousage" else {"usage": {"prompt_tokens": 10, "completion_tokens": 4}}
                good = json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": answer_for(passage)}}], **usage}
                ).encode()
                if action == "malformed":
                    payload = b'{"choices": [{"message": '  # cut off
                elif action == "nochoices":
                    payload = b'{"choices": []}'
                else:
                    payload = good
                if action == "truncated":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if action == "trickle":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    try:
                        for i in range(len(payload)):
                            self.wfile.write(payload[i: i + 1])
                            self.wfile.flush()
                            time.sleep(0.02)
                    except OSError:  # the client hung up at its deadline
                        pass
                    return
                self._send(200, payload)
                if action in ("ok", "slow", "nousage") or action.startswith("sleep:"):
                    with server.lock:
                        server.answered.append(passage)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls:  # (certificate file, key file): serve HTTPS
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
