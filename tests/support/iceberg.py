"""An Apache Iceberg catalog for the Spark run tests: Iceberg's JDBC catalog on PostgreSQL.

The catalog database lives on a PostgreSQL server from the ``pgserver`` wheel, restarted
to listen on 127.0.0.1 (pgserver listens on a Unix socket only, which the JDBC driver
cannot reach); the driver is Debian's ``libpostgresql-jdbc-java`` (/usr/share/java),
which ``.ci/run`` installs. Table files go to a local directory. ``settings`` are the
``[warehouse.spark]`` of a project, the same in this process and in a ``segql``
subprocess, so tables written by one are read by the other.
"""

from __future__ import annotations

import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segql.engines.spark import POSTGRES_JDBC_JAR, iceberg_jar

CATALOG = "lake"


@dataclass
class IcebergCatalog:
    uri: str
    warehouse: Path
    server: Any

    def settings(self) -> dict[str, str]:
        prefix = f"spark.sql.catalog.{CATALOG}"
        return {
            "spark.sql.extensions": (
                "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
            ),
            prefix: "org.apache.iceberg.spark.SparkCatalog",
            f"{prefix}.type": "jdbc",
            f"{prefix}.uri": self.uri,
            f"{prefix}.jdbc.user": "postgres",
            # Views need the catalog's V1 schema; the cache would hide other processes' commits.
            f"{prefix}.jdbc.schema-version": "V1",
            f"{prefix}.cache-enabled": "false",
            f"{prefix}.warehouse": str(self.warehouse),
            "spark.sql.defaultCatalog": CATALOG,
        }

    def stop(self) -> None:
        self.server.cleanup()


def missing() -> str | None:
    """Why the catalog cannot run here, or None."""
    if iceberg_jar() is None:
        return "the Iceberg runtime jar (snowpark-connect-deps-iceberg==1.0.1) is not installed"
    if not POSTGRES_JDBC_JAR.exists():
        return f"{POSTGRES_JDBC_JAR} is missing (apt-get install libpostgresql-jdbc-java)"
    return None


def start_catalog(directory: Path) -> IcebergCatalog:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver._commands import pg_ctl

    import psycopg

    server = pgserver.get_server(directory / "pgdata", cleanup_mode="delete")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = f"-h 127.0.0.1 -p {port} -k {server.pgdata}"
    pg_ctl(
        ["-w", "-o", options, "-l", str(server.log), "restart"],
        pgdata=server.pgdata,
        user=server.system_user,
        timeout=60,
    )
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("CREATE DATABASE iceberg")
    warehouse = directory / "lake"
    warehouse.mkdir()
    return IcebergCatalog(f"jdbc:postgresql://127.0.0.1:{port}/iceberg", warehouse, server)
