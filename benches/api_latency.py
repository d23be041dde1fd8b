#!/usr/bin/env python3
"""The API's latency while the same process parses, filters and extracts.

Starts `tenderflow run` (projector, API and every stage in one process, as
the quick start runs it) against the local RabbitMQ with a topology prefix
of its own, measures `GET /v1/tasks/{id}` idle, then again while a burst of
real tender documents goes through, and prints the percentiles of both. The
ratio of loaded to idle says how much the stages' CPU work stalls the API.

    python3 benches/api_latency.py target/release/tenderflow [ROUNDS]

Standard library only. The queues it declares are deleted at the end.
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpus")
DOCUMENTS = [
    "real/zb_hayin.docx",
    "real/sdsg_multilot.txt",
    "real/zb_zhongyou.docx",
    "real/en_boi_furniture.pdf",
    "dev/cn_construction.docx",
    "dev/cn_construction.md",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def state(url):
    """A task's state; `None` until the projector has heard of it."""
    try:
        return get(url)["state"]
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def wait(what, check, limit=120):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what}: not within {limit} s")


def probe(url, until, minimum):
    """GETs `url` back to back until `until()` and at least `minimum` samples;
    answers the latencies in ms."""
    samples = []
    while len(samples) < minimum or not until():
        start = time.perf_counter()
        get(url)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main():
    binary = os.path.abspath(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    work = tempfile.mkdtemp(prefix="tf-api-latency-")
    prefix = f"bench-api-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "TENDERFLOW__TOPOLOGY__PREFIX": prefix,
            "TENDERFLOW__STORE__ROOT": os.path.join(work, "store"),
            "TENDERFLOW__PROJECTOR__DB_PATH": os.path.join(work, "view.sqlite3"),
            "TENDERFLOW__HTTP__ADDR": f"127.0.0.1:{port}",
            "TENDERFLOW__METRICS__ADDR": f"127.0.0.1:{free_port()}",
            "TENDERFLOW__LOG__FILTER": "warn",
        }
    )
    base = f"http://127.0.0.1:{port}"
    run = subprocess.Popen([binary, "run"], env=env, stdout=subprocess.DEVNULL)
    try:
        wait("ready", lambda: get(f"{base}/readyz")["status"] == "ready")
        first = subprocess.run(
            [binary, "submit", "--wait", os.path.join(CORPUS, "dev/en_itt.md")],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.split()[0]
        url = f"{base}/v1/tasks/{first}"
        documents = [os.path.join(CORPUS, d) for d in DOCUMENTS]
        rows = []
        for _ in range(rounds):
            idle = probe(url, lambda: True, 300)
            # One line per task: its id, then the file.
            submitted = [
                line.split()[0]
                for line in subprocess.run(
                    [binary, "submit", *documents],
                    env=env, check=True, capture_output=True, text=True,
                ).stdout.splitlines()
            ]
            started = time.time()

            def all_done():
                return all(state(f"{base}/v1/tasks/{t}") in ("done", "failed") for t in submitted)

            loaded = probe(url, all_done, 50)
            rows.append((idle, loaded, time.time() - started))
        for p, name in [(0.5, "p50"), (0.99, "p99")]:
            idle = statistics.median(percentile(r[0], p) for r in rows)
            loaded = statistics.median(percentile(r[1], p) for r in rows)
            print(f"{name}: idle {idle:.2f} ms, under load {loaded:.2f} ms ({loaded / idle:.1f}x)")
        print(f"burst of {len(DOCUMENTS)} documents: median {statistics.median(r[2] for r in rows):.1f} s; "
              f"{rounds} rounds, {sum(len(r[1]) for r in rows)} loaded samples")
    finally:
        run.terminate()
        try:
            run.wait(timeout=150)
        except subprocess.TimeoutExpired:
            run.kill()
        queues = subprocess.run(
            ["rabbitmqctl", "list_queues", "name", "-q"], capture_output=True, text=True
        ).stdout.split()
        for queue in queues:
            if queue.startswith(prefix + "."):
                subprocess.run(["rabbitmqctl", "delete_queue", queue], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
