"""Run the real service as a `bentoml serve` subprocess on 127.0.0.1 and wait until it is ready.

The integration tests and the benchmark talk to the server exactly as a CRM does, over HTTP. A
server is a parent process plus worker processes in their own process groups, so stopping it —
gracefully or by SIGKILL, to test durability — addresses every process of its tree by id.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil  # a dependency of bentoml
import yaml

from pipelines.config import PROJECT_ROOT, Params

SERVICE = "serving.service:LeadScoreService"


def params_file(params: Params, path: Path, overrides: dict | None = None) -> Path:
    """Write params, with dotted-key overrides (``{"serving.max_batch": 5}``), as a file for LEADSCORE_PARAMS."""
    raw = params.model_dump(mode="json")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


class Client:
    """JSON over HTTP on one kept-alive connection, as a CRM integration would hold it (one per thread)."""

    def __init__(self, url: str, key: str | None = None, timeout: float = 60):
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port, self.key, self.timeout = parsed.hostname, parsed.port, key, timeout
        self.connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body=None, headers: dict | None = None) -> Response:
        """Send a request (`body` JSON-encoded unless bytes); reconnects once if the kept connection was closed."""
        sent = dict(headers or {})
        if self.key is not None:
            sent.setdefault("Authorization", f"Bearer {self.key}")
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        try:
            return self._send(method, path, body, sent)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.close()  # the server closed the kept connection: one fresh try
            return self._send(method, path, body, sent)

    def _send(self, method: str, path: str, body: bytes | None, headers: dict) -> Response:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.connection.request(method, path, body=body, headers=headers)
        reply = self.connection.getresponse()
        return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())

    def post(self, path: str, body, headers: dict | None = None) -> Response:
        return self.request("POST", path, body, headers)

    def get(self, path: str, headers: dict | None = None) -> Response:
        return self.request("GET", path, None, headers)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _tree(self) -> list[psutil.Process]:
        try:
            parent = psutil.Process(self.process.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL every process of the server at once: a crash, no chance to flush anything."""
        tree = self._tree()
        for proc in tree:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(tree, timeout=10)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (BentoML's graceful shutdown), then SIGKILL whatever is left after `timeout`.

        Nothing to do once the server has exited (after `kill`): its id may belong to another process by then.
        """
        if self.process.poll() is not None:
            return
        tree = self._tree()
        self.process.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(tree, timeout=timeout)
        for proc in alive:
            proc.kill()
        self.process.wait(timeout=10)


def start(
    env: dict[str, str],
    log_path: Path,
    *,
    target: str = SERVICE,
    port: int | None = None,
    timeout: float = 120,
) -> LocalServer:
    """Start `bentoml serve target` on 127.0.0.1 and return once GET /readyz answers 200.

    Args:
        env: variables added to this process's environment (LEADSCORE_PARAMS, the API key,
            BENTOML_HOME, ...). MLFLOW_TRACKING_URI is dropped unless given here.
        log_path: the server's stdout and stderr.
        target: a service import path or a bento tag.
        port: default a free one.
        timeout: seconds to wait for readiness.

    Raises:
        RuntimeError: the server exited or did not become ready; the message ends with its log.
    """
    port = port or free_port()
    full_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    full_env.update({"BENTOML_DO_NOT_TRACK": "true", **env})
    command = [sys.executable, "-m", "bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(port)]
    log = log_path.open("ab")
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    server = LocalServer(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"the server was not ready within {timeout:.0f} s:\n{server.log_tail()}")
