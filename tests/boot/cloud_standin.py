"""Stands in for the three clouds' metadata services and object stores, for the boot
test: a host's user data runs unchanged against it.

- Metadata on http://169.254.169.254 (and metadata.google.internal, by the guest's
  /etc/hosts): AWS IMDSv2 (session token, then the instance role's temporary
  credentials), Azure IMDS managed-identity tokens (for the one client id the stack
  gave the hosts), GCP service-account tokens. Each demands its cloud's header.
- Stores over HTTPS (a test CA the guest trusts), told apart by Host as the clouds are:
  S3 virtual-hosted objects, whose SigV4 signature is verified against the credentials
  handed out above; Azure blobs and GCS media downloads, with the bearer tokens above.

Every request is logged as one JSON line (what was asked, what was answered), so the test
can say what the host did. Run in the fleet's network namespace:
`python -m tests.boot.cloud_standin CONFIG.json`; prints "ready" once both ports listen.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

AWS_ROLE = "skyfleet-host"
AWS_KEY_ID = "ASIASTANDIN000000001"
AWS_SECRET = "standin-secret-access-key/0000000000000"
AWS_SESSION = "standin-session-token"
IMDS_TOKEN = "standin-imds-token"
AZURE_TOKEN = "standin-azure-token"
GCP_TOKEN = "standin-gcp-token"


def _sigv4_ok(method: str, path: str, query: str, headers: dict[str, str],
              region: str) -> str | None:
    """None when the request carries a valid SigV4 signature by our credentials, else
    what is wrong (the S3 rule, https://docs.aws.amazon.com/AmazonS3/latest/API/
    sig-v4-header-based-auth.html)."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 Authorization header"
    fields = dict(part.strip().split("=", 1) for part in auth[17:].split(","))
    key_id, date, scope_region, service, terminal = fields["Credential"].split("/")
    if key_id != AWS_KEY_ID or (scope_region, service, terminal) != (region, "s3",
                                                                      "aws4_request"):
        return f"wrong credential scope {fields['Credential']}"
    signed = fields["SignedHeaders"].split(";")
    if "x-amz-content-sha256" not in signed:
        return "x-amz-content-sha256 missing or not signed (S3 requires it)"
    if "x-amz-security-token" not in signed or headers.get(
            "x-amz-security-token") != AWS_SESSION:
        return "session token missing or not signed"
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, vs in sorted(parse_qs(query, keep_blank_values=True).items()) for v in vs)
    canonical = "\n".join([
        method, quote(unquote(path), safe="/-_.~"), canonical_query,
        "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed),
        fields["SignedHeaders"], headers.get("x-amz-content-sha256", ""),
    ])
    amz_date = headers.get("x-amz-date", "")
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, f"{date}/{region}/s3/aws4_request",
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + AWS_SECRET).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, fields["Signature"]) else "bad signature"


class StandIn:
    def __init__(self, config: dict[str, Any]) -> None:
        self.objects = {name: Path(path) for name, path in config["objects"].items()}
        self.aws = config["aws"]
        self.azure = config["azure"]
        self.gcp = config["gcp"]
        self._log = Path(config["log"]).open("a", buffering=1)
        self._lock = threading.Lock()

    def log(self, **entry: Any) -> None:
        with self._lock:
            self._log.write(json.dumps(entry) + "\n")

    def metadata(self, method: str, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        parts = urlsplit(url)
        path, query = parts.path, parse_qs(parts.query)
        if path == "/latest/api/token":
            if method != "PUT" or "x-aws-ec2-metadata-token-ttl-seconds" not in headers:
                return 400, b"IMDSv2 token needs PUT and a TTL"
            return 200, IMDS_TOKEN.encode()
        if path.startswith("/latest/meta-data/iam/security-credentials/"):
            if headers.get("x-aws-ec2-metadata-token") != IMDS_TOKEN:
                return 401, b"IMDSv2 session token required"
            role = path.rsplit("/", 1)[1]
            if not role:
                return 200, AWS_ROLE.encode()
            if role != AWS_ROLE:
                return 404, b"no such role"
            expires = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=6)).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
            return 200, json.dumps({"Code": "Success", "Type": "AWS-HMAC",
                                    "AccessKeyId": AWS_KEY_ID,
                                    "SecretAccessKey": AWS_SECRET, "Token": AWS_SESSION,
                                    "Expiration": expires}).encode()
        if path == "/metadata/identity/oauth2/token":
            if headers.get("metadata") != "true":
                return 400, b"Metadata: true required"
            if query.get("client_id") != [self.azure["client_id"]] or query.get(
                    "resource") != ["https://storage.azure.com/"]:
                return 400, b"unknown identity or resource"
            return 200, json.dumps({"access_token": AZURE_TOKEN,
                                    "token_type": "Bearer"}).encode()
        if path == "/computeMetadata/v1/instance/service-accounts/default/token":
            if headers.get("metadata-flavor") != "Google":
                return 403, b"Metadata-Flavor: Google required"
            return 200, json.dumps({"access_token": GCP_TOKEN, "expires_in": 3599,
                                    "token_type": "Bearer"}).encode()
        return 404, b"not found"

    def store(self, method: str, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        host = headers.get("host", "").split(":")[0]
        parts = urlsplit(url)
        name: str | None = None
        if host == f"{self.aws['bucket']}.s3.{self.aws['region']}.amazonaws.com":
            problem = _sigv4_ok(method, parts.path, parts.query, headers, self.aws["region"])
            if problem:
                return 403, problem.encode()
            name = unquote(parts.path.lstrip("/"))
        elif host == f"{self.azure['account']}.blob.core.windows.net":
            if headers.get("authorization") != f"Bearer {AZURE_TOKEN}" or not headers.get(
                    "x-ms-version"):
                return 403, b"bearer token and x-ms-version required"
            container, _, name = parts.path.lstrip("/").partition("/")
            if container != self.azure["container"]:
                return 404, b"no such container"
        elif host == "storage.googleapis.com":
            if headers.get("authorization") != f"Bearer {GCP_TOKEN}":
                return 401, b"bearer token required"
            prefix = f"/storage/v1/b/{self.gcp['bucket']}/o/"
            if not parts.path.startswith(prefix) or parse_qs(parts.query).get("alt") != [
                    "media"]:
                return 404, b"not a media download of our bucket"
            name = unquote(parts.path[len(prefix):])
        if name is None or name not in self.objects:
            return 404, b"no such object"
        return 200, self.objects[name].read_bytes()


def _handler(standin: StandIn, kind: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            serve = standin.metadata if kind == "metadata" else standin.store
            status, body = serve(self.command, self.path, headers)
            standin.log(kind=kind, method=self.command, host=headers.get("host", ""),
                        path=self.path, status=status,
                        detail=body.decode(errors="replace") if status != 200 else "",
                        size=len(body))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = _answer

        def log_message(self, format: str, *args: Any) -> None:
            """Requests go to the JSON log, not stderr."""

    return Handler


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    standin = StandIn(config)
    metadata = ThreadingHTTPServer((config["metadata_bind"], 80), _handler(standin, "metadata"))
    store = ThreadingHTTPServer((config["store_bind"], 443), _handler(standin, "store"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config["tls_cert"], config["tls_key"])
    store.socket = context.wrap_socket(store.socket, server_side=True)
    for server in (metadata, store):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1])
