#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of moto, for keyward's tests (stdlib only).

    faultproxy.py --upstream http://127.0.0.1:PORT --port 0 --rules FILE [--log FILE]

It binds 127.0.0.1 only, prints `listening on http://127.0.0.1:PORT` to stderr once it accepts
connections, and forwards every request (method, path, headers, body) to the upstream unchanged
unless a rule matches. It never listens on, or forwards to, anything but loopback.

Rules: FILE holds a JSON list, re-read on every request (write it atomically: temp file and
rename). A missing file means no rules. Each rule:

    {"action": "ListGroupsForUser", "name": "alice", "fault": "throttle", "times": 2}

  action  the IAM Action parameter of the request (form body or query string); required
  name    optional; compared with the request's UserName, else its GroupName parameter
  times   optional; the rule applies to its first N matching requests only. Counts live in
          memory and restart whenever the file's content changes.
  fault   one of
          throttle       HTTP 400, IAM's Throttling error body (not forwarded)
          500            HTTP 500, IAM's ServiceFailure error body (not forwarded)
          hang           never answer (not forwarded) until the client goes away, or 60 s
          drop:ELEMENT   forward; a 200 answer comes back with every <ELEMENT>...</ELEMENT>
                         and <ELEMENT/> removed (drop:Groups, drop:IsTruncated, drop:User...)
          truncate       forward; a 200 answer comes back with <IsTruncated>true</IsTruncated>
                         and no <Marker>
          badxml         forward; a 200 answer comes back cut in the middle

The first matching rule wins. A rules file that is not valid answers every request with
HTTP 502 and says why on stderr (a test must not pass on a typo).

--log FILE: one line per request, `ACTION NAME FAULT` (NAME `-` when the request has none,
FAULT `-` when forwarded unchanged), written when the request is decided.
"""

import argparse
import hashlib
import http.client
import http.server
import json
import re
import select
import sys
import threading
import time
import urllib.parse
import uuid

HANG_SECONDS = 60
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
}
ELEMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


class RulesError(Exception):
    pass


def parse_rules(text):
    """The validated rules of a rules file's text."""
    if not text.strip():
        return []
    try:
        rules = json.loads(text)
    except ValueError as e:
        raise RulesError(f"not JSON: {e}") from None
    if not isinstance(rules, list):
        raise RulesError("not a JSON list")
    for i, r in enumerate(rules):
        if not isinstance(r, dict):
            raise RulesError(f"rule {i} is not an object")
        unknown = set(r) - {"action", "name", "fault", "times"}
        if unknown:
            raise RulesError(f"rule {i} has unknown keys {sorted(unknown)}")
        if not isinstance(r.get("action"), str) or not r["action"]:
            raise RulesError(f"rule {i} has no action")
        if "name" in r and not isinstance(r["name"], str):
            raise RulesError(f"rule {i}: name is not a string")
        if "times" in r and (not isinstance(r["times"], int) or r["times"] < 0):
            raise RulesError(f"rule {i}: times is not a count")
        fault = r.get("fault")
        if not isinstance(fault, str):
            raise RulesError(f"rule {i} has no fault")
        if fault.startswith("drop:"):
            if not ELEMENT.match(fault[5:]):
                raise RulesError(f"rule {i}: bad element in {fault!r}")
        elif fault not in ("throttle", "500", "hang", "truncate", "badxml"):
            raise RulesError(f"rule {i}: unknown fault {fault!r}")
    return rules


def error_body(kind, code, message):
    return (
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        f"<Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()


def drop_element(body, element):
    """The body with every <element ...>...</element> and <element/> removed."""
    name = re.escape(element)
    text = body.decode("utf-8", "replace")
    text = re.sub(rf"<{name}(\s[^>]*)?>.*?</{name}\s*>", "", text, flags=re.S)
    text = re.sub(rf"<{name}(\s[^>]*)?/>", "", text)
    return text.encode()


def truncate(body):
    """The body claiming more pages, without the marker that would fetch them."""
    text = drop_element(drop_element(body, "IsTruncated"), "Marker").decode()
    m = re.search(r"</\w+Result\s*>", text)
    at = m.start() if m else len(text)
    return (text[:at] + "<IsTruncated>true</IsTruncated>" + text[at:]).encode()


class State:
    def __init__(self, upstream, rules_path, log_path):
        self.upstream = upstream
        self.rules_path = rules_path
        self.log_path = log_path
        self.lock = threading.Lock()
        self.digest = None
        self.counts = {}

    def decide(self, action, name):
        """The fault for this request, or None to forward it; raises RulesError."""
        try:
            with open(self.rules_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raw = b""
        rules = parse_rules(raw.decode("utf-8", "replace"))
        digest = hashlib.sha256(raw).hexdigest()
        with self.lock:
            if digest != self.digest:
                self.digest, self.counts = digest, {}
            for i, r in enumerate(rules):
                if r["action"] != action:
                    continue
                if "name" in r and r["name"] != name:
                    continue
                if "times" in r:
                    used = self.counts.get(i, 0)
                    if used >= r["times"]:
                        continue
                    self.counts[i] = used + 1
                return r["fault"]
        return None

    def log(self, action, name, fault):
        if not self.log_path:
            return
        line = f"{action or '-'} {name or '-'} {fault or '-'}\n"
        with self.lock, open(self.log_path, "a") as f:
            f.write(line)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultproxy"

    def log_message(self, fmt, *args):  # quiet: --log is the record
        pass

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send(self, status, body, headers=()):
        self.send_response_only(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def forward(self, body):
        st = self.server.state
        conn = http.client.HTTPConnection(st.upstream.hostname, st.upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
            return resp.status, data, kept
        finally:
            conn.close()

    def hang(self):
        """Hold the connection without answering until the client closes it, or 60 s."""
        deadline = time.monotonic() + HANG_SECONDS
        sock = self.connection
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([sock], [], [], min(left, 1.0))
            if readable:
                try:
                    if not sock.recv(4096):
                        break
                except OSError:
                    break
        self.close_connection = True

    def handle_any(self):
        st = self.server.state
        body = self.read_body()
        params = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if "x-www-form-urlencoded" in self.headers.get("Content-Type", ""):
            params.update(urllib.parse.parse_qs(body.decode("utf-8", "replace")))
        action = (params.get("Action") or [""])[0]
        name = (params.get("UserName") or params.get("GroupName") or [""])[0]
        try:
            fault = st.decide(action, name)
        except RulesError as e:
            print(f"faultproxy: rules file {st.rules_path}: {e}", file=sys.stderr, flush=True)
            st.log(action, name, "rules-error")
            self.send(502, f"faultproxy: bad rules file: {e}\n".encode())
            return
        st.log(action, name, fault)
        xml = [("Content-Type", "text/xml")]
        if fault == "throttle":
            return self.send(400, error_body("Sender", "Throttling", "Rate exceeded"), xml)
        if fault == "500":
            return self.send(
                500, error_body("Receiver", "ServiceFailure", "Internal failure"), xml
            )
        if fault == "hang":
            return self.hang()
        try:
            status, data, headers = self.forward(body)
        except OSError as e:
            return self.send(502, f"faultproxy: upstream: {e}\n".encode())
        if status == 200 and fault:
            if fault.startswith("drop:"):
                data = drop_element(data, fault[5:])
            elif fault == "truncate":
                data = truncate(data)
            elif fault == "badxml":
                data = data[: len(data) // 2]
        self.send(status, data, headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any


def loopback_url(text):
    url = urllib.parse.urlsplit(text)
    if url.scheme != "http" or url.hostname not in ("127.0.0.1", "localhost") or not url.port:
        sys.exit(f"faultproxy: --upstream must be http://127.0.0.1:PORT, not {text!r}")
    return url


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", required=True, type=loopback_url)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--rules", required=True)
    p.add_argument("--log")
    a = p.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    server.state = State(a.upstream, a.rules, a.log)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
