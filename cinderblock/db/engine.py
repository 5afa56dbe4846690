"""Engine and sessions. SQLite gets WAL, a busy timeout and serialised writers.

`Database.read()` opens a session for queries; `Database.write()` a transaction that commits on
success. On SQLite, writers in one process take a lock first so that they queue in Python instead
of spinning in SQLite's busy handler (which sleeps in coarse steps and ruins latency).

A lost database connection (server restarted, backend terminated, network cut) surfaces as
DatabaseUnavailable (the API's 503) and never needs a restart: the pool pings a connection before
handing it out and replaces dead ones, and connecting gives up after CONNECT_TIMEOUT seconds.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from cinderblock.model.errors import DatabaseUnavailable

LOG = logging.getLogger(__name__)
R = TypeVar("R")
CONNECT_TIMEOUT = 5
# Seconds a request waits for a free pooled connection before answering 503.
POOL_TIMEOUT = 10
# Errors that mean "the database is away", not "the statement is wrong".
_LOST = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)


def _is_deadlock(error: Exception) -> bool:
    """The server rolled the transaction back to break a deadlock (or a lock wait): run it again."""
    orig = getattr(error, "orig", None)
    if getattr(orig, "sqlstate", None) in ("40P01", "40001"):  # PostgreSQL: deadlock, serialization
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    # MySQL/MariaDB: deadlock, lock wait timeout, and the savepoint a deadlock rollback took away.
    return bool(args) and args[0] in (1213, 1205, 1305)


def _unavailable(error: Exception) -> DatabaseUnavailable:
    detail = str(getattr(error, "orig", None) or error).strip().splitlines()
    deadlock = _is_deadlock(error)
    LOG.log(logging.INFO if deadlock else logging.WARNING, "database %s: %s",
            "aborted a transaction" if deadlock else "unavailable", detail[0] if detail else type(error).__name__)
    # The detail names hosts and ports: logged, not shown to API clients.
    unavailable = DatabaseUnavailable("The database is not reachable at the moment; try again later.")
    unavailable.deadlock = deadlock  # type: ignore[attr-defined]
    return unavailable


def _connect_args(url: str) -> dict[str, Any]:
    # psycopg (libpq) and PyMySQL both take connect_timeout in seconds.
    return {"connect_timeout": CONNECT_TIMEOUT} if url.startswith(("postgresql", "mysql")) else {}


def _sqlite_setup(engine: Engine, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


class Database:
    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split("sqlite:///", 1)[-1]
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            args = {"check_same_thread": False, "timeout": 30}
            self.engine = create_engine(url, connect_args=args, pool_size=pool_size + 10, max_overflow=20)
            _sqlite_setup(self.engine, "BEGIN")
            # Writers take the database lock up front: no deadlock upgrading a read lock.
            self.write_engine = create_engine(url, connect_args=args, pool_size=4, max_overflow=8)
            _sqlite_setup(self.write_engine, "BEGIN IMMEDIATE")
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=20,
                                        pool_recycle=3600, pool_timeout=POOL_TIMEOUT,
                                        connect_args=_connect_args(url))
            self.write_engine = self.engine
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._write_sessions = sessionmaker(self.write_engine, expire_on_commit=False, autoflush=False)
        self._write_lock = threading.Lock() if self.is_sqlite else None

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        try:
            with self._sessions() as session:
                yield session
        except _LOST as error:
            raise _unavailable(error) from error
        except exc.DBAPIError as error:
            if error.connection_invalidated:
                raise _unavailable(error) from error
            raise

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            with self._write_sessions() as session, session.begin():
                yield session
        except _LOST as error:
            raise _unavailable(error) from error
        except exc.DBAPIError as error:
            if error.connection_invalidated:
                raise _unavailable(error) from error
            raise
        finally:
            if lock is not None:
                lock.release()

    def transaction(self, work: Callable[[Session], R], attempts: int = 4) -> R:
        """work(session) in a write transaction, run again (rolled back, so from scratch) when the
        server broke a deadlock by aborting it: racing first uses of a quota row on MariaDB do."""
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as session:
                    return work(session)
            except DatabaseUnavailable as error:
                if not getattr(error, "deadlock", False) or attempt == attempts:
                    raise
                time.sleep(random.uniform(0.005, 0.03) * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def dispose(self) -> None:
        self.engine.dispose()
        self.write_engine.dispose()
