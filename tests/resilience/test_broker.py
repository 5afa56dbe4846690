"""RabbitMQ goes away under load (`rabbitmqctl stop_app`, then `start_app`) while api, scheduler and
volume run as separate processes on PostgreSQL: nothing is lost silently and nobody restarts."""
from __future__ import annotations

import time
from pathlib import Path

from tests.resilience.deploy import deployment, rabbitmqctl, wait_for
from tests.resilience.load import CreateLoad

OUTAGE = 3.0  # seconds the broker is away


def test_broker_restart_during_load(tmp_path: Path) -> None:
    with deployment(tmp_path, "postgresql", extra_config="quota_volumes = -1\nquota_gigabytes = -1") as cloud:
        with CreateLoad(cloud.url, clients=4, pause=0.1) as load:
            time.sleep(1)
            stopped = time.monotonic()
            rabbitmqctl("stop_app")
            try:
                time.sleep(OUTAGE)
            finally:
                rabbitmqctl("start_app")  # never leave the machine's broker stopped
            outage = time.monotonic() - stopped
            time.sleep(1)
            # The services reconnected by themselves: a new create goes through.
            wait_for(lambda: cloud.http.post("/v3/volumes", json={"volume": {"size": 1}}).status_code == 202,
                     30, "a create to be accepted again")
            time.sleep(1)

        statuses = load.statuses()
        # Every request was answered: accepted, or refused with a clear 503 within seconds.
        assert set(statuses) <= {202, 503}, (statuses, cloud.logs())
        assert statuses.get(503, 0) >= 1, f"no create was refused during a {outage:.0f} s outage: {statuses}"
        refused = [a for a in load.answers if a.status == 503]
        assert all("serviceUnavailable" in a.body for a in refused)
        assert max(a.seconds for a in refused) < 15, [round(a.seconds, 1) for a in refused]

        # Accepted creates all complete (queued messages survived the restart); refused ones left nothing.
        final = cloud.settle(timeout=60)
        accepted = set(load.accepted())
        assert accepted <= set(final)
        assert {final[ident] for ident in accepted} == {"available"}, cloud.logs()
        assert set(final) - accepted <= {ident for ident, status in final.items() if status == "available"}
        assert len(final) == len(accepted) + 1  # + the probe create after the outage
        assert cloud.files() == set(final)
        usage = cloud.http.get("/v3/os-quota-sets/admin", params={"usage": "true"}).json()["quota_set"]
        assert usage["volumes"]["in_use"] == len(final)

        # Calls across the broker work again too (a reply queue was re-declared).
        some = next(iter(accepted))
        info = cloud.http.post(f"/v3/volumes/{some}/action",
                               json={"os-initialize_connection": {"connector": {"host": "h"}}})
        assert info.status_code == 200, info.text
