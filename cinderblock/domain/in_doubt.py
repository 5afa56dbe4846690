"""Creates whose commit the database connection cut.

The API answers 503 (a 503 leaves nothing behind), but the commit may have happened: the answer was
lost, not necessarily the work. Such a row would wait `creating` for a scheduler that was never told
about it, until the scheduler's sweeper took it for a lost message. So it is removed (and its quota
given back) from here, in the background, as soon as the database answers again.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from sqlalchemy import delete

from cinderblock.db import tables
from cinderblock.db.engine import Database
from cinderblock.db.repos import quotas
from cinderblock.model import transitions
from cinderblock.model.errors import DatabaseUnavailable

LOG = logging.getLogger(__name__)
UNDO_SECONDS = 600.0  # after that the scheduler's sweeper settles it


def undo_create_in_doubt(db: Database, volume_id: str, project_id: str, usage: Mapping[str, int]) -> threading.Thread:
    def undo() -> bool:
        with db.write() as session:
            # Only while nothing took it: unplaced, as it was inserted.
            removed: bool = session.execute(delete(tables.Volume).where(
                tables.Volume.id == volume_id, tables.Volume.status == transitions.UNPLACED_CREATE["status"],
                tables.Volume.host.is_(None))).rowcount == 1  # type: ignore[attr-defined]
            if removed:
                quotas.release(session, project_id, usage)
            return removed

    def run() -> None:
        deadline, delay = time.monotonic() + UNDO_SECONDS, 0.5
        while True:
            try:
                if undo():
                    LOG.warning("volume %s: its create was answered 503 but committed; removed", volume_id)
                return
            except DatabaseUnavailable:
                if time.monotonic() + delay > deadline:
                    LOG.warning("volume %s: create in doubt not settled; the scheduler's sweeper will", volume_id)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 3.0)
            except Exception:
                LOG.exception("volume %s: settling a create in doubt failed", volume_id)
                return

    thread = threading.Thread(target=run, name=f"in-doubt-{volume_id[:8]}", daemon=True)
    thread.start()
    return thread
