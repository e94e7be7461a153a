"""Local object server for Brisk's s3:// and http:// integration tests.

Usage: python3 tests/object_server.py [--host 127.0.0.1] [--files DIR] [--auth]
                                      [--bucket NAME]... [--verbose]

--bucket makes an empty bucket (in us-east-1) before the server listens.

Binds an OS-chosen port, prints exactly one stdout line ``listening on
http://HOST:PORT`` (with --auth a second one follows: ``credentials KEY SECRET``),
and serves until stdin reaches EOF, so it dies with the test that holds the pipe.
Runtime needs: moto[server] (brings Flask and werkzeug) and the stdlib.
Underscores are invalid in S3 bucket names, so /_files and /_fault never clash.

* ``/_files/REL``: GET/HEAD of DIR/REL via werkzeug's send_file (conditional=True):
  ``Range: bytes=a-b`` gives 206 + Content-Range; ETag, Last-Modified (1 s
  resolution) and Content-Length always. Paths leaving DIR give 404 (also: no DIR).
* ``/_fault``: fault injection; every answer is the JSON status.
  POST ``?kind=K&count=N&match=SUBSTR`` arms K for the next N (default 1) requests
  whose decoded path (plus ``?query``) contains SUBSTR (default: all requests);
  earlier armed faults are used first.
    503:   answer 503 with an S3 XML error body (Code SlowDown).
    short: run the real handler, send its real status and headers (the full
           Content-Length) and then only the first half of the body; werkzeug
           closes every connection (``Connection: close``), so the client sees
           EOF before Content-Length bytes: a truncated body on the wire.
  GET -> ``{"served": {"503": n, "short": m}, "requests": total}``: faults served so
  far and requests other than /_fault. DELETE disarms all (counters are kept).
* anything else: moto's S3 (moto.server's Flask app for "s3"), path-style
  ``/bucket/key``, multipart uploads included. Moto's minimum part size is 5 MiB
  but for the last part (env S3_UPLOAD_PART_MIN_SIZE lowers it; left alone here).

Credentials: by default moto takes any signature; an unsigned request is
anonymous (GET/HEAD of a non-public object: 403 with an empty body). --auth turns
on moto's own IAM authentication (INITIAL_NO_AUTH_ACTION_COUNT=0), makes an IAM
user with an s3:* policy and prints its key. Moto then checks each request's
SigV4 signature (over the raw path and query as sent, see sign_raw_uri): unknown
key -> 403 InvalidAccessKeyId, wrong secret -> 403 SignatureDoesNotMatch (HEAD: bare
403). No Authorization header (presigned URLs too) -> 403 AccessDenied from here.
"""

import argparse
import json
import logging
import os
import sys
import threading
from urllib.parse import parse_qs

FILES_PREFIX = "/_files/"
FAULT_PATH = "/_fault"
FAULT_KINDS = ("503", "short")
RAW_URI = threading.local()  # each request's target as sent (one thread per request)


def s3_error(status, code, message):
    """A werkzeug Response carrying an S3-style XML error."""
    from werkzeug.wrappers import Response

    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>object-server</RequestId></Error>"
    )
    return Response(body, status=status, content_type="application/xml")


class Faults:
    """Armed faults and counters, shared by all request threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.armed = []  # [kind, remaining count, match substring]
        self.served = {kind: 0 for kind in FAULT_KINDS}
        self.requests = 0

    def status(self):
        with self.lock:
            return {"served": dict(self.served), "requests": self.requests}

    def take(self, target):
        """Count one request and return the fault kind to apply to it, if any."""
        with self.lock:
            self.requests += 1
            for fault in self.armed:
                kind, _, match = fault
                if match in target:
                    fault[1] -= 1
                    self.served[kind] += 1
                    self.armed = [f for f in self.armed if f[1] > 0]
                    return kind
        return None


def fault_control(faults, environ, start_response):
    from werkzeug.wrappers import Response

    method = environ["REQUEST_METHOD"]
    if method == "POST":
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        kind = query.get("kind", "")
        try:
            count = int(query.get("count", "1"))
        except ValueError:
            count = -1
        if kind not in FAULT_KINDS or count < 0:
            text = f"need kind in {FAULT_KINDS} and count >= 0\n"
            return Response(text, status=400)(environ, start_response)
        with faults.lock:
            if count > 0:
                faults.armed.append([kind, count, query.get("match", "")])
    elif method == "DELETE":
        with faults.lock:
            faults.armed.clear()
    elif method != "GET":
        return Response("method not allowed\n", status=405)(environ, start_response)
    body = json.dumps(faults.status())
    return Response(body, content_type="application/json")(environ, start_response)


def make_files_app(files_dir):
    from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
    from werkzeug.utils import send_from_directory

    def files_app(environ, start_response):
        try:
            if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
                raise MethodNotAllowed(valid_methods=["GET", "HEAD"])
            if files_dir is None:
                raise NotFound()
            # WSGI hands the path over as latin-1 decoded bytes; names are UTF-8.
            rel = environ["PATH_INFO"][len(FILES_PREFIX):]
            rel = rel.encode("latin-1").decode("utf-8", "replace")
            # safe_join inside refuses "..", absolute paths and the like (404).
            response = send_from_directory(files_dir, rel, environ, conditional=True)
        except HTTPException as error:
            response = error
        return response(environ, start_response)

    return files_app


def truncated(inner, environ, start_response):
    """Run inner, then send its status and headers but only half of its body."""
    captured, chunks = {}, []

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return chunks.append

    result = inner(environ, capture)
    try:
        chunks.extend(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    body = b"".join(chunks)
    headers = captured["headers"]
    if environ["REQUEST_METHOD"] != "HEAD":  # announce the full length
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
    start_response(captured["status"], headers)
    return [body[: len(body) // 2]]


def make_app(s3_app, files_app, faults, auth):
    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == FAULT_PATH:
            return fault_control(faults, environ, start_response)
        query = environ.get("QUERY_STRING", "")
        RAW_URI.value = environ.get("RAW_URI")
        kind = faults.take(path + ("?" + query if query else ""))
        if kind == "503":
            error = s3_error(503, "SlowDown", "Please reduce your request rate.")
            return error(environ, start_response)
        if path.startswith(FILES_PREFIX):
            inner = files_app
        elif auth and "HTTP_AUTHORIZATION" not in environ:
            inner = s3_error(403, "AccessDenied", "Anonymous access is forbidden.")
        else:
            inner = s3_app
        if kind == "short":
            return truncated(inner, environ, start_response)
        return inner(environ, start_response)

    return app


def sign_raw_uri():
    """Make moto check signatures over the path and query as sent on the wire.

    Moto re-signs a URL that Flask has decoded and re-quoted its own way, so keys
    like ``year=2024/a`` and any ``?prefix=a%2F`` would fail with
    SignatureDoesNotMatch. For S3 the canonical URI is the raw path as sent.
    """
    from moto.iam.access_control import S3IAMRequest

    original = S3IAMRequest._create_aws_request

    def create_aws_request(self):
        request = original(self)
        request.url = getattr(RAW_URI, "value", None) or request.url
        return request

    S3IAMRequest._create_aws_request = create_aws_request


def create_credentials():
    """Make an IAM user allowed s3:* in moto's default account; return its key."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends

    sign_raw_uri()
    iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    iam.create_user(region_name="us-east-1", user_name="brisk-tests")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    iam.put_user_policy("brisk-tests", "s3-all", json.dumps(policy))
    key = iam.create_access_key("brisk-tests")
    return key.access_key_id, key.secret_access_key


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--files", help="directory served under /_files/")
    parser.add_argument("--auth", action="store_true", help="check S3 signatures")
    parser.add_argument("--bucket", action="append", default=[], help="make this bucket")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args()

    if args.auth:  # read by moto.settings at import time
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    from moto.moto_server.werkzeug_app import create_backend_app
    from werkzeug.serving import make_server

    if not args.verbose:  # keep request errors, drop the per-request lines
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
    files_dir = os.path.abspath(args.files) if args.files else None
    files_app = make_files_app(files_dir)
    app = make_app(create_backend_app("s3"), files_app, Faults(), args.auth)
    credentials = create_credentials() if args.auth else None
    if args.bucket:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        for name in args.bucket:
            s3_backends[DEFAULT_ACCOUNT_ID]["aws"].create_bucket(name, "us-east-1")

    server = make_server(args.host, 0, app, threaded=True)
    serve = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    serve.start()
    print(f"listening on http://{args.host}:{server.server_port}", flush=True)
    if credentials:
        print("credentials {} {}".format(*credentials), flush=True)
    try:
        sys.stdin.read()  # returns at EOF: the test closed its end or died
    except KeyboardInterrupt:
        pass
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
