#!/usr/bin/env python3
"""A fake sales platform and a fake DingTalk robot for scripts/demo.sh (never the internet).

  scripts/fake-endpoints.py PORT LOGFILE PLATFORM_SECRET ROBOT_SECRET

POST /platform/...  checks the signed webhook (X-Orderflow-Signature = sha256= + hex
                    HMAC-SHA256 of "{X-Orderflow-Timestamp}.{body}"), takes each
                    Idempotency-Key once, answers 200.
POST /wecom/send?key=...  a WeCom robot (no signature), answers {"errcode":0,"errmsg":"ok"}.
POST /robot/send?access_token=...&timestamp=...&sign=...
                    checks DingTalk's sign (urlencode(base64(HmacSHA256(secret,
                    timestamp + "\\n" + secret)))), answers {"errcode":0,"errmsg":"ok"}.
Every request is one JSON line in LOGFILE: {"to", "signature_ok", "duplicate", "body"}.
"""

import base64
import hashlib
import hmac
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, LOG, PLATFORM_SECRET, ROBOT_SECRET = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
TAKEN = set()


def platform_signed(headers, body):
    timestamp = headers.get("X-Orderflow-Timestamp", "")
    expected = "sha256=" + hmac.new(PLATFORM_SECRET.encode(), timestamp.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers.get("X-Orderflow-Signature", ""))


def dingtalk_signed(query):
    timestamp = query.get("timestamp", [""])[0]
    digest = hmac.new(ROBOT_SECRET.encode(), f"{timestamp}\n{ROBOT_SECRET}".encode(), hashlib.sha256).digest()
    # parse_qs decoded the sign once; compare the decoded forms.
    return query.get("sign", [""])[0] == base64.b64encode(digest).decode()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/wecom"):
            to, ok, duplicate = "robot", "key=" in url.query, False
            answer = {"errcode": 0, "errmsg": "ok"}
        elif url.path.startswith("/robot"):
            to, ok, duplicate = "robot", dingtalk_signed(urllib.parse.parse_qs(url.query)), False
            answer = {"errcode": 0, "errmsg": "ok"}
        else:
            to, ok = "platform", platform_signed(self.headers, body)
            key = self.headers.get("Idempotency-Key", "")
            duplicate = key in TAKEN
            TAKEN.add(key)
            answer = {"ok": True, "duplicate": duplicate}
        try:
            document = json.loads(body)
        except ValueError:
            document = body.decode("utf-8", "replace")
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps({"to": to, "signature_ok": ok, "duplicate": duplicate,
                                  "body": document}, ensure_ascii=False) + "\n")
        data = json.dumps(answer).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
