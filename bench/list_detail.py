"""`GET /volumes/detail` with 10,000 volumes in the database: time for a page of 1,000.

    python bench/list_detail.py [--volumes 10000] [--page 1000] [--repeat 20]

The rows are written straight into the service's SQLite database (as 10,000 API creates would
leave them, each with two metadata keys), then the service is started on that state directory
and the pages are fetched over HTTP, following the next links.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import httpx

from common import HEADERS, percentile, running_service

from cinderblock.config.settings import build_config, load_settings
from cinderblock.volume.loading import driver_options
from cinderblock.db import migrate, tables
from cinderblock.db.engine import Database


def populate(state: str, count: int) -> None:
    settings = load_settings(build_config(), driver_options, state_path=state)
    db = Database(settings.database_url)
    migrate.sync(db)
    with db.write() as session:
        type_id = session.query(tables.VolumeType.id).filter_by(name="__DEFAULT__").scalar()
        for index in range(count):
            volume = tables.Volume(project_id="admin", user_id="admin", display_name=f"vol-{index}", size=1,
                                   status="available", attach_status="detached", availability_zone="nova",
                                   volume_type_id=type_id, host="bench@local#volumes")
            volume.metadata_items = [tables.VolumeMetadata(key="tier", value="gold"),
                                     tables.VolumeMetadata(key="index", value=str(index))]
            session.add(volume)
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--volumes", type=int, default=10000)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "state")
        start = time.perf_counter()
        populate(state, args.volumes)
        print(f"inserted {args.volumes} volumes in {time.perf_counter() - start:.1f} s")
        with running_service("", state_dir=state) as base, httpx.Client(headers=HEADERS, timeout=60) as client:
            first: list[float] = []
            for _ in range(args.repeat):
                began = time.perf_counter()
                response = client.get(f"{base}/v3/volumes/detail?limit={args.page}")
                first.append(time.perf_counter() - began)
                assert response.status_code == 200 and len(response.json()["volumes"]) == args.page
            pages: list[float] = []
            url: str | None = f"{base}/v3/volumes/detail?limit={args.page}"
            seen = 0
            while url:
                began = time.perf_counter()
                body = client.get(url).json()
                pages.append(time.perf_counter() - began)
                seen += len(body["volumes"])
                links = body.get("volumes_links") or []
                url = links[0]["href"] if links else None
            assert seen == args.volumes, seen
            ms = [t * 1000 for t in first]
            print(f"first page of {args.page}: p50={percentile(ms, 50):.1f} ms p99={percentile(ms, 99):.1f} ms "
                  f"(n={len(ms)})")
            ms = [t * 1000 for t in pages]
            print(f"all {len(pages)} pages by next links: p50={percentile(ms, 50):.1f} ms max={max(ms):.1f} ms")


if __name__ == "__main__":
    main()
