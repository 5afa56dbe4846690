"""Background API load for resilience tests: clients that create volumes until told to stop."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.resilience.deploy import HEADERS


@dataclass
class Answer:
    status: int  # 0: no HTTP answer at all (connection error)
    seconds: float
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def volume_id(self) -> str | None:
        return self.body.get("volume", {}).get("id") if self.status == 202 else None


class CreateLoad:
    """`clients` threads, each POSTing a 1 GiB volume every `pause` seconds."""

    def __init__(self, url: str, clients: int = 4, pause: float = 0.05) -> None:
        self.url, self.clients, self.pause = url, clients, pause
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> CreateLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers=HEADERS, timeout=60) as client:
            while not self._stop.is_set():
                start = time.monotonic()
                try:
                    response = client.post("/v3/volumes", json={"volume": {"size": 1}})
                    answer = Answer(response.status_code, time.monotonic() - start, response.json())
                except (httpx.HTTPError, ValueError):
                    answer = Answer(0, time.monotonic() - start)
                with self._lock:
                    self.answers.append(answer)
                self._stop.wait(self.pause)

    def accepted(self) -> list[str]:
        return [a.volume_id for a in self.answers if a.volume_id]

    def count(self, status: int) -> int:
        return sum(1 for a in self.answers if a.status == status)

    def statuses(self) -> dict[int, int]:
        result: dict[int, int] = {}
        for answer in self.answers:
            result[answer.status] = result.get(answer.status, 0) + 1
        return result
