"""The AMQP contract, tested as another team would: from Python, with pika.

Publishes one task per the published JSON Schema (one message, only the
required fields, a UUID v4 task id, a document by file:// reference), reads
its view and summary over HTTP, then publishes malformed messages and checks
that each lands in the ingest dead-letter queue with its documented kind.

Run by `tests/contract.rs`, which starts the pipeline; configured by
environment variables:

  CONTRACT_AMQP_URL   amqp://guest:guest@127.0.0.1:5672/%2f
  CONTRACT_PREFIX     the pipeline's topology prefix
  CONTRACT_HTTP       http://127.0.0.1:PORT
  CONTRACT_DOCUMENT   an absolute path beneath store.allowed_roots
  CONTRACT_OUTSIDE    an absolute path outside them
"""

import hashlib
import json
import os
import pathlib
import sys
import time
import urllib.error
import urllib.request
import uuid

import pika
from jsonschema import Draft202012Validator

AMQP_URL = os.environ["CONTRACT_AMQP_URL"]
PREFIX = os.environ["CONTRACT_PREFIX"]
HTTP = os.environ["CONTRACT_HTTP"].rstrip("/")
DOCUMENT = pathlib.Path(os.environ["CONTRACT_DOCUMENT"])
OUTSIDE = pathlib.Path(os.environ["CONTRACT_OUTSIDE"])
TIMEOUT_S = 90


def get(path):
    """GET a JSON document; (status, body)."""
    try:
        with urllib.request.urlopen(HTTP + path, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def wait_for(what, probe):
    """Calls probe until it answers something, or fails after TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        try:
            found = probe()
        except (urllib.error.URLError, ConnectionError) as err:
            found, last = None, err
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


def document_ref(path, **overrides):
    data = path.read_bytes()
    ref = {
        "uri": path.as_uri(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "filename": path.name,
    }
    ref.update(overrides)
    return ref


class Publisher:
    """Publishes to the work exchange with confirms, as the README says."""

    def __init__(self):
        self.connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def publish(self, body, task_id=None):
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=str(uuid.uuid4()),
            correlation_id=task_id,
            timestamp=int(time.time()),
        )
        # mandatory: an unroutable message (wrong prefix, pipeline not
        # started) raises UnroutableError instead of vanishing.
        self.channel.basic_publish(
            exchange=f"{PREFIX}.work",
            routing_key="ingest",
            body=body,
            properties=properties,
            mandatory=True,
        )

    def close(self):
        self.connection.close()


def main():
    status, schema = get("/v1/schemas/envelope.v1.json")
    assert status == 200, (status, schema)
    validator = Draft202012Validator(schema)
    status, event_schema = get("/v1/schemas/event.v1.json")
    assert status == 200, (status, event_schema)
    event_validator = Draft202012Validator(event_schema)
    wait_for("readiness", lambda: get("/readyz")[0] == 200 or None)

    publisher = Publisher()

    # One message is the whole submission: only the required fields.
    task_id = str(uuid.uuid4())
    message = {"schema": 1, "task_id": task_id, "documents": [document_ref(DOCUMENT)]}
    validator.validate(message)
    published = time.monotonic()
    publisher.publish(json.dumps(message).encode(), task_id)

    def done():
        status, view = get(f"/v1/tasks/{task_id}")
        if status == 404:
            return None
        assert status == 200, (status, view)
        assert view["state"] not in ("failed",), view
        return view if view["state"] == "done" else None

    view = wait_for(f"task {task_id} to be done", done)
    took_ms = (time.monotonic() - published) * 1000
    assert [d["filename"] for d in view["documents"]] == [DOCUMENT.name], view
    assert view["options"] == {"filter_model": "rules", "extract_model": "rules"}, view
    status, summary = get(f"/v1/tasks/{task_id}/summary")
    assert status == 200, (status, summary)
    assert summary["fields"]["project"]["value"] == "某市政道路改造工程", summary["fields"]
    status, body = get(f"/v1/tasks/{task_id}/events")
    assert status == 200, (status, body)
    events = body["events"]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "received" and kinds[-1] == "completed", kinds
    for event in events:
        event_validator.validate(event)
    print(
        f"ok: task {task_id} done {took_ms:.0f} ms after its one message was published "
        f"(seen by polling every 200 ms), project {summary['fields']['project']['value']}"
    )

    # Bad messages: each is dead-lettered at ingest with its kind. The
    # first four break the schema (a producer validating first never sends
    # them); the last three fit it but not the pipeline's checks.
    marker = uuid.uuid4().hex
    good = document_ref(DOCUMENT)
    bad = []

    def envelope(**fields):
        tid = str(uuid.uuid4())
        body = {"schema": 1, "task_id": tid, "documents": [good]}
        body.update(fields)
        return tid, body

    bad.append(("not JSON", None, f"not json {marker}".encode(), "invalid_message", False))
    for name, (tid, body) in [
        ("schema 2", envelope(schema=2)),
        ("no documents", envelope(documents=[])),
        ("misspelt field", envelope(submited_at="2026-01-01T00:00:00Z")),
    ]:
        bad.append((name, tid, json.dumps(body).encode(), "invalid_message", False))
    for name, kind, ref in [
        ("https URI", "unsupported_uri", dict(good, uri="https://example.com/notice.md")),
        ("wrong checksum", "checksum_mismatch", dict(good, sha256="0" * 64)),
        ("outside the allowed roots", "forbidden_path", document_ref(OUTSIDE)),
    ]:
        tid, body = envelope(documents=[ref])
        bad.append((name, tid, json.dumps(body).encode(), kind, True))

    for name, tid, body, _, fits in bad:
        if tid is not None:
            errors = list(validator.iter_errors(json.loads(body)))
            assert bool(errors) != fits, (name, [e.message for e in errors])
        publisher.publish(body, tid)
    publisher.close()

    def dead_letters():
        status, page = get("/v1/dead-letters?stage=ingest&limit=1000")
        assert status == 200, (status, page)
        letters = page["dead_letters"]
        found = {}
        for name, tid, _, _, _ in bad:
            for letter in letters:
                mine = letter["task_id"] == tid if tid else marker in letter["preview"]
                if mine:
                    found[name] = letter
        return found if len(found) == len(bad) else None

    found = wait_for("every bad message in the ingest dead letters", dead_letters)
    for name, tid, _, kind, _ in bad:
        letter = found[name]
        assert letter["error_kind"] == kind, (name, letter)
        assert letter["error_message"], (name, letter)
        print(f"ok: {name} dead-lettered as {kind}: {letter['error_message']}")

    # A task refused at ingest still shows what was submitted.
    refused = next(tid for name, tid, _, _, _ in bad if name == "https URI")
    status, view = get(f"/v1/tasks/{refused}")
    assert status == 200 and view["state"] == "failed", (status, view)
    assert view["documents"] and view["last_error"]["kind"] == "unsupported_uri", view
    print("ok: the AMQP contract holds")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as err:
        print(f"contract test failed: {err!r}", file=sys.stderr)
        raise
