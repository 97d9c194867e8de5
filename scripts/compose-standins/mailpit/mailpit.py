"""A Mailpit stand-in: SMTP on 1025, a little of Mailpit's HTTP API on 8025 (see Dockerfile)."""

import email
import email.policy
import email.utils
import json
import signal
import sys
import threading
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

LOCK = threading.Lock()
MESSAGES = []  # (id, created, raw bytes), oldest first


def addresses(value):
    out = []
    for name, addr in email.utils.getaddresses([value or ""]):
        if addr:
            out.append({"Name": name, "Address": addr})
    return out


def parts(msg):
    """Attachments as Mailpit lists them, with a PartID this server resolves."""
    found = []
    for i, part in enumerate(msg.walk()):
        if part.is_multipart():
            continue
        if part.get_content_disposition() == "attachment" or part.get_filename():
            payload = part.get_payload(decode=True) or b""
            found.append(
                {
                    "PartID": str(i),
                    "FileName": part.get_filename() or "",
                    "ContentType": part.get_content_type(),
                    "Size": len(payload),
                }
            )
    return found


def body(msg, subtype):
    part = msg.get_body(preferencelist=(subtype,))
    if part is None:
        return ""
    try:
        return part.get_content()
    except (LookupError, ValueError):
        return ""


def summary(mid, created, raw, full=False):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    atts = parts(msg)
    s = {
        "ID": mid,
        "MessageID": (msg.get("Message-ID") or "").strip("<>"),
        "From": (addresses(msg.get("From")) or [None])[0],
        "To": addresses(msg.get("To")),
        "Subject": msg.get("Subject") or "",
        "Created": created,
        "Size": len(raw),
        "Attachments": atts if full else len(atts),
    }
    if full:
        s["Text"] = body(msg, "plain")
        s["HTML"] = body(msg, "html")
    return s


class Sink:
    async def handle_DATA(self, server, session, envelope):
        mid = uuid.uuid4().hex
        created = datetime.now(timezone.utc).isoformat()
        with LOCK:
            MESSAGES.append((mid, created, bytes(envelope.original_content or envelope.content)))
        print(f"mailpit stand-in: message {mid} from {envelope.mail_from} to {envelope.rcpt_tos}")
        return "250 Message accepted for delivery"


def find(mid):
    with LOCK:
        for m in MESSAGES:
            if m[0] == mid:
                return m
    return None


class Api(BaseHTTPRequestHandler):
    def send(self, code, data, ctype="application/json"):
        if not isinstance(data, bytes):
            data = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?", 1)[0].rstrip("/")
        seg = path.split("/")
        if path in ("/livez", "/readyz"):
            return self.send(200, b"ok", "text/plain")
        if path == "/api/v1/messages":
            with LOCK:
                msgs = list(reversed(MESSAGES))
            items = [summary(*m) for m in msgs]
            return self.send(200, {"total": len(items), "count": len(items), "messages": items})
        if len(seg) >= 5 and seg[:4] == ["", "api", "v1", "message"]:
            m = find(seg[4])
            if m is None:
                return self.send(404, b"message not found", "text/plain")
            if len(seg) == 5:
                return self.send(200, summary(*m, full=True))
            if len(seg) == 6 and seg[5] == "raw":
                return self.send(200, m[2], "message/rfc822")
            if len(seg) == 7 and seg[5] == "part":
                msg = email.message_from_bytes(m[2], policy=email.policy.default)
                for i, part in enumerate(msg.walk()):
                    if str(i) == seg[6] and not part.is_multipart():
                        payload = part.get_payload(decode=True) or b""
                        return self.send(200, payload, part.get_content_type())
                return self.send(404, b"part not found", "text/plain")
        if path == "":
            with LOCK:
                n = len(MESSAGES)
            return self.send(200, f"<p>Mailpit stand-in: {n} messages</p>".encode(), "text/html")
        return self.send(404, b"not found", "text/plain")

    def do_DELETE(self):
        if self.path.rstrip("/") == "/api/v1/messages":
            with LOCK:
                MESSAGES.clear()
            return self.send(200, b"ok", "text/plain")
        return self.send(404, b"not found", "text/plain")

    def log_message(self, fmt, *args):
        pass


def main():
    smtp = Controller(Sink(), hostname="0.0.0.0", port=1025)
    smtp.start()
    http = ThreadingHTTPServer(("0.0.0.0", 8025), Api)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("mailpit stand-in: SMTP on 1025, HTTP on 8025")
    try:
        http.serve_forever()
    finally:
        smtp.stop()


if __name__ == "__main__":
    main()
