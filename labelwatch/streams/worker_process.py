"""A worker in a child process: start it, wait until it is healthy, stop it with SIGTERM.

Used by ``labelwatch demo``, the end-to-end tests and the benchmarks, so they exercise the
real ``labelwatch worker`` command rather than an in-process imitation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from labelwatch.settings import Settings


class WorkerProcess:
    """A running ``labelwatch worker`` child process."""

    def __init__(self, process: subprocess.Popen[bytes], settings: Settings, log_path: Path):
        self.process = process
        self.settings = settings
        self.log_path = log_path

    @classmethod
    def start(
        cls,
        settings: Settings,
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        ready_timeout_s: float = 90.0,
    ) -> WorkerProcess:
        """Start a worker configured by ``env`` (default: this process's) and wait for /health.

        ``data_dir`` is passed as an absolute path so the child resolves the same store.
        """
        child_env = dict(os.environ if env is None else env)
        child_env["LABELWATCH_DATA_DIR"] = str(settings.data_dir.resolve())
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "labelwatch", "worker"],
                env=child_env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        worker = cls(process, settings, log_path)
        try:
            worker.wait_healthy(ready_timeout_s)
        except BaseException:
            worker.stop()
            raise
        return worker

    def wait_healthy(self, timeout_s: float) -> None:
        """Block until the worker's /health answers 200; raise if it exits or times out."""
        url = f"http://{self.settings.web_host}:{self.settings.web_port}/health"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"worker not healthy after {timeout_s:.0f} s; see {self.log_path}")

    def wait_ready(self, timeout_s: float) -> dict[str, object]:
        """Block until /ready answers 200 and return its report; raise with the last report's
        problems if the worker exits or is not ready within ``timeout_s``."""
        url = f"http://{self.settings.web_host}:{self.settings.web_port}/ready"
        deadline = time.monotonic() + timeout_s
        last: object = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    report: dict[str, object] = json.loads(response.read())
                    return report
            except urllib.error.HTTPError as exc:  # 503: not ready, says why
                last = json.loads(exc.read() or b"{}").get("problems")
            except OSError as exc:
                last = str(exc)
            time.sleep(0.3)
        raise RuntimeError(
            f"worker not ready after {timeout_s:.0f} s ({last}); see {self.log_path}"
        )

    def get(self, path: str) -> bytes:
        """GET one of the worker's pages (``/metrics``, ``/health``)."""
        url = f"http://{self.settings.web_host}:{self.settings.web_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body: bytes = response.read()
            return body

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, wait up to ``timeout_s`` (then SIGKILL); returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
