"""segql benchmark: ``segql dispatch`` of 100k changes to a local webhook, in batches of
100 changes a request against one change a request, both measured in the same run.

Run ``python bench/dispatch.py`` (``--changes N`` for another size). A DuckDB project is
built in a temporary folder with N people who all enter one segment in one run; a
webhook server (``ThreadingHTTPServer``, in a process of its own so that it does not
share the dispatcher's interpreter) counts the changes it receives. Two actions send the
same N changes, with the same ``concurrency`` and ``batch_size`` (5,000 changes read and
recorded together): ``one`` (a request per change) and ``batched`` (``batch = 100``). The
figure is the ratio of their times (goal: >= 20x). Every change is checked to have
arrived.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from segql.downstream.dispatch import run_dispatch  # noqa: E402
from segql.engines import connect  # noqa: E402
from segql.project import load_project  # noqa: E402
from segql.runs.runner import Runner  # noqa: E402

CONFIG = """\
[warehouse]
url = "duckdb:///warehouse.duckdb"
schema = "segql"

[entity]
table = "people"
id = "person_id"

[sources.none]
table = "people"
person = "person_id"

[[actions]]
name = "one"
segment = "everyone"
on = "enter"
webhook = {{ url = "{url}", timeout = 30 }}
concurrency = 8
batch_size = 5000

[[actions]]
name = "batched"
segment = "everyone"
on = "enter"
webhook = {{ url = "{url}", timeout = 30 }}
concurrency = 8
batch_size = 5000
batch = 100
"""


def serve(port_queue: Any) -> None:
    """The webhook: counts the changes in each request (an object, or an array)."""
    received = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received[0] += len(body) if isinstance(body, list) else 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            text = str(received[0]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_queue.put(server.server_port)
    server.serve_forever()


def received(url: str) -> int:
    import httpx

    return int(httpx.get(url).text)


def build_project(folder: Path, people: int, url: str) -> None:
    (folder / "segments").mkdir(parents=True)
    (folder / "segments" / "all.segql").write_text("segment everyone where status = 'on'\n")
    (folder / "segql.toml").write_text(CONFIG.format(url=url))
    con = duckdb.connect(str(folder / "warehouse.duckdb"))
    con.execute(
        f"CREATE TABLE people AS SELECT i AS person_id, 'on' AS status FROM range({people}) t(i)"
    )
    con.close()
    project = load_project(folder)
    warehouse = connect(project.config)
    try:
        Runner(project, warehouse).run(None, datetime(2026, 1, 1))
    finally:
        warehouse.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=100_000)
    args = parser.parse_args(argv)
    ports: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(ports,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{ports.get(timeout=30)}/hook"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "project"
            build_project(folder, args.changes, url)
            times = {}
            for name in ("batched", "one"):
                before = received(url)
                started = time.perf_counter()
                rows = run_dispatch(folder, [name])
                times[name] = time.perf_counter() - started
                got = received(url) - before
                assert rows.rows[0][4] == args.changes == got, (rows.rows, got)
                rate = args.changes / times[name]
                print(f"{name:8} {times[name]:8.2f} s  {rate:10,.0f} changes/s", flush=True)
    finally:
        server.terminate()
    ratio = times["one"] / times["batched"]
    print(f"dispatch, {args.changes:,} changes: one a request / 100 a request = {ratio:.1f}x "
          f"(goal >= 20x: {'met' if ratio >= 20 else 'not met'})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
