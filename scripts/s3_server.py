"""
The dev stack's S3 server: moto's S3 server made durable by a journal.

moto keeps every bucket in memory, so a restart used to lose all evidence. This launcher runs the
same moto WSGI application behind a middleware that appends every successful mutating request
(PUT, POST, DELETE answered 2xx: bucket creation, versioning and Object Lock configuration,
PutObject with its body, CopyObject, retention, legal hold, deletes, multipart parts) to an
append-only journal, and fsyncs it BEFORE the response leaves the server: a request acknowledged
to a client is on disk. On start the journal is replayed through the same S3 API, in order, before
the port opens, so `dev up` reports the server healthy only once every version is back.

After each replayed request the version it touched gets back what moto generates afresh: its
version id, its last-modified time, its retention (mode and date: a bucket default would
otherwise restart its clock) and its legal hold, as recorded right after the original request.

Crash consistency: each entry is `<sha256 of header> <header JSON>\n<body>\n`, the header naming
the body's length and digest. A torn last entry (the process died while writing it, so it was never
acknowledged) is cut off on start; damage anywhere else stops the server with the offset, rather
than serving a store silently missing history.

Not preserved: version ids of delete markers made by a batch DeleteObjects (our code never
batch-deletes). moto does not enforce compliance-mode WORM (a COMPLIANCE retention can be
shortened): production uses MinIO or Ceph RGW with Object Lock.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import os
import re
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

MUTATING = {"PUT", "POST", "DELETE"}
STATUS_PATH = "/_factory/journal"
UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")


class JournalError(Exception):
    pass


def _s3_backends() -> Any:
    from moto.s3.models import s3_backends

    return s3_backends


def find_bucket(name: str) -> Any:
    # dict.values: existing backends only (BackendDict creates them lazily on item access).
    for by_partition in dict.values(_s3_backends()):
        for backend in dict.values(by_partition):
            bucket = backend.buckets.get(name)
            if bucket is not None:
                return bucket
    return None


def split_path(environ: dict[str, Any]) -> tuple[str | None, str | None]:
    """Path-style addressing (the SDK is configured with forcePathStyle): /bucket/key."""
    raw = environ.get("PATH_INFO", "")
    # WSGI hands PATH_INFO over as latin-1 text of the (percent-decoded) UTF-8 bytes.
    path = raw.encode("latin-1").decode("utf-8", errors="surrogateescape")
    parts = path.lstrip("/").split("/", 1)
    bucket = parts[0] or None
    key = parts[1] if len(parts) > 1 and parts[1] else None
    return bucket, key


def find_version(bucket_name: str, key: str, version_id: str | None) -> Any:
    bucket = find_bucket(bucket_name)
    if bucket is None:
        return None
    versions = bucket.keys.getlist(key) or []
    if version_id is None:
        return versions[-1] if versions else None
    for v in versions:
        if v.version_id == version_id:
            return v
    return None


def snapshot(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"versionId": obj.version_id}
    lm = getattr(obj, "last_modified", None)
    if isinstance(lm, datetime.datetime):
        out["lastModified"] = lm.isoformat()
    for field in ("lock_mode", "lock_until", "lock_legal_status"):
        if hasattr(obj, field):
            out[field] = getattr(obj, field)
    return out


def restore(obj: Any, state: dict[str, Any]) -> None:
    obj._version_id = state["versionId"]
    if "lastModified" in state:
        obj.last_modified = datetime.datetime.fromisoformat(state["lastModified"])
    for field in ("lock_mode", "lock_until", "lock_legal_status"):
        if field in state and hasattr(obj, field):
            setattr(obj, field, state[field])


def recordable_environ(environ: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in environ.items():
        if k.startswith("wsgi.") or k.startswith("werkzeug."):
            continue
        if isinstance(v, str) or (isinstance(v, dict) and all(isinstance(x, str) for x in v.values())):
            out[k] = v
    return out


def query(environ: dict[str, Any]) -> dict[str, list[str]]:
    return parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)


def read_body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):
        return stream.read()
    length = environ.get("CONTENT_LENGTH") or "0"
    n = int(length) if length.isdigit() else 0
    return stream.read(n) if n else b""


def call(app: Callable, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Runs the WSGI app to completion, holding its response back."""
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        captured["status"] = status
        captured["headers"] = headers
        return lambda _data: None

    result: Iterable[bytes] = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close:
            close()
    return captured["status"], captured["headers"], body


def header(headers: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


class Journal:
    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.entries = 0
        self.replay_seconds = 0.0
        self.truncated_bytes = 0
        self.fh: io.BufferedWriter | None = None

    def read(self) -> list[tuple[dict[str, Any], bytes]]:
        """Every whole entry; a torn tail is cut off, damage before it raises."""
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as f:
            data = f.read()
        entries: list[tuple[dict[str, Any], bytes]] = []
        pos = 0
        good = 0
        while pos < len(data):
            try:
                nl = data.index(b"\n", pos)
                digest, _, head_bytes = data[pos:nl].partition(b" ")
                if hashlib.sha256(head_bytes).hexdigest().encode() != digest:
                    raise JournalError("header checksum mismatch")
                head = json.loads(head_bytes)
                start = nl + 1
                end = start + int(head["bodyLength"])
                if end + 1 > len(data) or data[end : end + 1] != b"\n":
                    raise JournalError("body shorter than recorded")
                body = data[start:end]
                if hashlib.sha256(body).hexdigest() != head["bodySha256"]:
                    raise JournalError("body checksum mismatch")
            except (ValueError, KeyError, JournalError) as err:
                if self._only_tail_left(data, pos):
                    self.truncated_bytes = len(data) - pos
                    print(f"s3 journal: cutting off a torn last entry at byte {pos} ({self.truncated_bytes} bytes, never acknowledged): {err}", flush=True)
                    break
                raise JournalError(f"{self.path}: entry at byte {pos} is damaged ({err}); entries after it exist, so this is not a torn write. Refusing to serve an incomplete store.") from err
            entries.append((head, body))
            pos = end + 1
            good = pos
        if good < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())
        return entries

    @staticmethod
    def _only_tail_left(data: bytes, pos: int) -> bool:
        """A torn write can only be the last entry: no complete, checksummed entry follows it."""
        nxt = data.find(b"\n", pos)
        while nxt != -1 and nxt + 1 < len(data):
            line_end = data.find(b"\n", nxt + 1)
            if line_end == -1:
                return True
            digest, _, head_bytes = data[nxt + 1 : line_end].partition(b" ")
            if hashlib.sha256(head_bytes).hexdigest().encode() == digest:
                return False
            nxt = line_end
        return True

    def open_for_append(self) -> None:
        new = not os.path.exists(self.path)
        self.fh = open(self.path, "ab")
        if new:
            dir_fd = os.open(os.path.dirname(self.path), os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def append(self, head: dict[str, Any], body: bytes) -> None:
        assert self.fh is not None
        head = {**head, "bodyLength": len(body), "bodySha256": hashlib.sha256(body).hexdigest()}
        head_bytes = json.dumps(head, separators=(",", ":"), ensure_ascii=True).encode()
        digest = hashlib.sha256(head_bytes).hexdigest().encode()
        self.fh.write(digest + b" " + head_bytes + b"\n" + body + b"\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.entries += 1


class DurableS3:
    """WSGI middleware: journals successful mutating requests before answering them."""

    def __init__(self, app: Callable, journal: Journal):
        self.app = app
        self.journal = journal
        # One mutating request at a time: the journal's order is the order moto applied them, and the
        # snapshot taken after a request is that request's effect.
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == STATUS_PATH:
            payload = json.dumps(self.status()).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
            return [payload]
        if environ.get("REQUEST_METHOD") not in MUTATING:
            return self.app(environ, start_response)
        body = read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        recorded = recordable_environ(environ)
        with self.lock:
            status, headers, out = call(self.app, environ)
            if status.startswith("2"):
                head: dict[str, Any] = {"time": time.time(), "environ": recorded}
                effect = self.effect(environ, headers, out)
                if effect:
                    head.update(effect)
                self.journal.append(head, body)
        start_response(status, headers)
        return [out]

    def effect(self, environ: dict[str, Any], headers: list[tuple[str, str]], out: bytes) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if environ["REQUEST_METHOD"] == "POST" and "uploads" in query(environ):
            m = UPLOAD_ID.search(out)
            if m:
                result["uploadId"] = m.group(1).decode()
        bucket, key = split_path(environ)
        if bucket and key:
            vid = header(headers, "x-amz-version-id") or (query(environ).get("versionId") or [None])[0]
            # A DELETE of a given version removes it: nothing is left to describe.
            if not (environ["REQUEST_METHOD"] == "DELETE" and "versionId" in query(environ)):
                obj = find_version(bucket, key, vid)
                if obj is not None:
                    result["state"] = snapshot(obj)
        return result

    def status(self) -> dict[str, Any]:
        size = os.path.getsize(self.journal.path) if os.path.exists(self.journal.path) else 0
        return {
            "journal": self.journal.path,
            "entries": self.journal.entries,
            "bytes": size,
            "replaySeconds": round(self.journal.replay_seconds, 3),
            "truncatedBytes": self.journal.truncated_bytes,
            "enforcesComplianceWorm": False,
        }

    def replay(self) -> None:
        t0 = time.time()
        entries = self.journal.read()
        upload_ids: dict[str, str] = {}
        for n, (head, body) in enumerate(entries):
            environ: dict[str, Any] = dict(head["environ"])
            qs = environ.get("QUERY_STRING", "")
            for old, new in upload_ids.items():
                qs = qs.replace(f"uploadId={old}", f"uploadId={new}")
            environ["QUERY_STRING"] = qs
            environ.update(
                {
                    "wsgi.input": io.BytesIO(body),
                    "wsgi.errors": sys.stderr,
                    "wsgi.url_scheme": "http",
                    "wsgi.version": (1, 0),
                    "wsgi.multithread": False,
                    "wsgi.multiprocess": False,
                    "wsgi.run_once": False,
                    "wsgi.input_terminated": False,
                    "CONTENT_LENGTH": str(len(body)),
                }
            )
            status, headers, out = call(self.app, environ)
            if not status.startswith("2"):
                raise JournalError(f"replaying entry {n} ({environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}) answered {status}: {out[:300]!r}")
            if "uploadId" in head:
                m = UPLOAD_ID.search(out)
                if m:
                    upload_ids[head["uploadId"]] = m.group(1).decode()
            state = head.get("state")
            if state:
                bucket, key = split_path(environ)
                vid = header(headers, "x-amz-version-id") or (query(environ).get("versionId") or [None])[0]
                obj = find_version(bucket, key, vid) if bucket and key else None
                if obj is None:
                    raise JournalError(f"replaying entry {n}: the version it made is not there")
                restore(obj, state)
        self.journal.entries = len(entries)
        self.journal.replay_seconds = time.time() - t0
        print(f"s3 journal: replayed {len(entries)} entries from {self.journal.path} in {self.journal.replay_seconds:.2f}s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--journal", required=True, help="append-only journal file")
    args = parser.parse_args()

    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    moto_app = DomainDispatcherApplication(create_backend_app)
    journal = Journal(os.path.abspath(args.journal))
    durable = DurableS3(moto_app, journal)
    try:
        durable.replay()
    except JournalError as err:
        print(f"s3 journal: {err}", file=sys.stderr, flush=True)
        sys.exit(3)
    journal.open_for_append()
    run_simple(args.host, args.port, durable, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
