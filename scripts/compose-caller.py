#!/usr/bin/env python3
"""A caller for scripts/compose-test.sh: a SIP phone on this host calling the compose file's
published SIP port (Kamailio), with RTP to and from the published RTP port of the node that
answers. Standard library only (CI has no curl and no SIP library).

  compose-caller.py listen --host IP --proxy IP:PORT
      One call: waits for the greeting, checks RTP came both ways, hangs up.
      Prints one JSON line: {"call_id", "node_rtp", "heard_ms", "sent_packets"}.
  compose-caller.py hold --host IP --proxy IP:PORT --seconds N [--answered FILE]
      One call held N seconds (the greeting and whatever follows), then BYE; FILE is written
      once the greeting is heard.
  compose-caller.py voicemail --host IP --proxy IP:PORT --from NUMBER --speech WAV
      An after-hours S1 voicemail in English (9, 2, 1, 1, speech, #), as
      tests/common/voicemail.rs leaves it. Prints {"call_id", "node_rtp", ...} when done.

Every wait is bounded; a failure exits 1 with what was waited for.
"""

import argparse
import json
import random
import re
import socket
import struct
import sys
import threading
import time
import wave

# ---- G.711 mu-law ------------------------------------------------------------------------


def ulaw_decode(b):
    b = ~b & 0xFF
    sign = b & 0x80
    exponent = (b >> 4) & 0x07
    mantissa = b & 0x0F
    sample = ((mantissa << 3) + 0x84) << exponent
    sample -= 0x84
    return -sample if sign else sample


DECODE = [ulaw_decode(i) for i in range(256)]


def ulaw_encode(sample):
    sign = 0x80 if sample < 0 else 0
    if sample < 0:
        sample = -sample
    sample = min(sample, 32635) + 0x84
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


SILENCE = bytes([ulaw_encode(0)] * 160)


def fail(what):
    print(f"compose-caller: {what}", file=sys.stderr)
    sys.exit(1)


def wait_for(what, within, cond, step=0.02):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(step)
    fail(f"gave up waiting {within} s for {what}")


def header(msg, name):
    for line in msg.split("\r\n")[1:]:
        if not line:
            break
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def headers(msg, name):
    out = []
    for line in msg.split("\r\n")[1:]:
        if not line:
            break
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            out.extend(p.strip() for p in v.split(","))
    return out


class Call:
    def __init__(self, host, proxy, number, caller):
        self.host = host
        self.proxy = proxy
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind((host, 0))
        self.sip.settimeout(0.1)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((host, 0))
        self.rtp.settimeout(0.1)
        self.me = f"{host}:{self.sip.getsockname()[1]}"
        self.call_id = f"compose-{random.getrandbits(64):x}@{host}"
        self.tag = f"c{random.getrandbits(32):x}"
        self.caller = caller
        self.number = number
        self.cseq = 1
        self.lock = threading.Lock()
        self.heard_samples = 0
        self.loud_since_mark = False
        self.last_loud = None
        self.mouth = []  # samples still to say
        self.sent = 0
        self.stop = threading.Event()
        self.remote_rtp = None
        self.to = None
        self.route = []
        self.target = None
        self.engine_bye = False

    # ---- SIP ----
    def send_sip(self, text):
        self.sip.sendto(text.encode(), self.proxy)

    def invite(self):
        rtp_port = self.rtp.getsockname()[1]
        sdp = (
            f"v=0\r\no=caller 1 1 IN IP4 {self.host}\r\ns=-\r\nc=IN IP4 {self.host}\r\nt=0 0\r\n"
            f"m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
        )
        proxy = f"{self.proxy[0]}:{self.proxy[1]}"
        msg = (
            f"INVITE sip:{self.number}@{proxy} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.me};branch=z9hG4bK{random.getrandbits(48):x};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{self.caller}@{self.host}>;tag={self.tag}\r\n"
            f"To: <sip:{self.number}@{proxy}>\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:{self.caller}@{self.me}>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
        )
        deadline = time.monotonic() + 15
        next_send = 0.0
        while True:
            now = time.monotonic()
            if now > deadline:
                fail("no 200 OK to the INVITE within 15 s")
            if now >= next_send:
                self.send_sip(msg)
                next_send = now + 1.0
            try:
                data, _ = self.sip.recvfrom(65536)
            except socket.timeout:
                continue
            text = data.decode(errors="replace")
            if text.startswith("SIP/2.0 1"):
                next_send = deadline  # provisional: stop retransmitting
                continue
            if text.startswith("SIP/2.0 200"):
                break
            if text.startswith("SIP/2.0 "):
                fail(f"call refused: {text.splitlines()[0]}")
        self.to = header(text, "To")
        # The route set: Record-Route of the answer, reversed (RFC 3261 12.1.2).
        self.route = list(reversed(headers(text, "Record-Route")))
        contact = header(text, "Contact") or ""
        m = re.search(r"<([^>]+)>", contact)
        self.target = m.group(1) if m else contact
        body = text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in text else ""
        c = re.search(r"^c=IN IP4 (\S+)", body, re.M)
        p = re.search(r"^m=audio (\d+)", body, re.M)
        if not (c and p):
            fail(f"no SDP answer in the 200 OK:\n{text}")
        self.remote_rtp = (c.group(1), int(p.group(1)))
        self.in_dialog("ACK", 1)
        threading.Thread(target=self.mouth_loop, daemon=True).start()
        threading.Thread(target=self.ears_loop, daemon=True).start()

    def in_dialog(self, method, cseq, extra="", body=""):
        route = "".join(f"Route: {r}\r\n" for r in self.route)
        msg = (
            f"{method} {self.target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.me};branch=z9hG4bK{random.getrandbits(48):x};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"{route}"
            f"From: <sip:{self.caller}@{self.host}>;tag={self.tag}\r\n"
            f"To: {self.to}\r\nCall-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n{body}"
        )
        self.send_sip(msg)
        return msg

    def request(self, method, extra="", body="", within=10):
        """An in-dialog request, retransmitted until its final answer."""
        self.cseq += 1
        cseq = self.cseq
        deadline = time.monotonic() + within
        next_send = 0.0
        msg = None
        while time.monotonic() < deadline:
            if time.monotonic() >= next_send:
                if msg is None:
                    msg = self.in_dialog(method, cseq, extra, body)
                else:
                    self.send_sip(msg)
                next_send = time.monotonic() + 0.5
            text = self.read_sip()
            if text and text.startswith("SIP/2.0 ") and header(text, "CSeq") == f"{cseq} {method}":
                if not text.startswith("SIP/2.0 1"):
                    return text.splitlines()[0]
        fail(f"no answer to {method} within {within} s")

    def read_sip(self):
        try:
            data, frm = self.sip.recvfrom(65536)
        except socket.timeout:
            return None
        text = data.decode(errors="replace")
        if text.startswith("BYE "):
            ok = "SIP/2.0 200 OK\r\n"
            for h in ("Via", "From", "To", "Call-ID", "CSeq"):
                for v in [header(text, h)] if h != "Via" else headers(text, "Via"):
                    if v:
                        ok += f"{h}: {v}\r\n"
            ok += "Content-Length: 0\r\n\r\n"
            self.sip.sendto(ok.encode(), frm)
            self.engine_bye = True
        return text

    def press(self, key):
        with self.lock:
            self.loud_since_mark = False
        status = self.request(
            "INFO", "Content-Type: application/dtmf-relay\r\n", f"Signal={key}\r\nDuration=160\r\n"
        )
        if not status.startswith("SIP/2.0 200"):
            fail(f"INFO {key}: {status}")

    def hang_up(self):
        status = self.request("BYE", within=10)
        self.stop.set()
        return status

    # ---- RTP ----
    def mouth_loop(self):
        seq = random.getrandbits(16)
        ssrc = random.getrandbits(32)
        start = time.monotonic()
        i = 0
        while not self.stop.is_set():
            with self.lock:
                frame = self.mouth[:160]
                del self.mouth[:160]
            payload = bytes(ulaw_encode(s) for s in frame) + SILENCE[len(frame):]
            pkt = struct.pack("!BBHII", 0x80, 0, seq, (i * 160) & 0xFFFFFFFF, ssrc) + payload
            try:
                self.rtp.sendto(pkt, self.remote_rtp)
                self.sent += 1
            except OSError:
                pass
            seq = (seq + 1) & 0xFFFF
            i += 1
            # Real-time pacing is the behaviour (RTP every 20 ms), not a wait for an event.
            delay = start + 0.02 * i - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def ears_loop(self):
        while not self.stop.is_set():
            try:
                data = self.rtp.recv(2048)
            except socket.timeout:
                continue
            if len(data) < 12 or data[1] & 0x7F != 0:
                continue
            pcm = [DECODE[b] for b in data[12:]]
            loud = any(abs(s) > 1500 for s in pcm)
            with self.lock:
                self.heard_samples += len(pcm)
                if loud:
                    self.last_loud = time.monotonic()
                    self.loud_since_mark = True

    def wait_prompt_start(self, within=30):
        wait_for("a prompt to begin", within, lambda: self.loud_since_mark)
        with self.lock:
            begun = self.heard_samples
        wait_for("300 ms of the prompt", 5, lambda: self.heard_samples >= begun + 2400)

    def wait_prompt_end(self, quiet=0.7, within=30):
        def ended():
            with self.lock:
                return (
                    self.loud_since_mark
                    and self.last_loud is not None
                    and time.monotonic() - self.last_loud >= quiet
                )

        wait_for("a prompt to end", within, ended)
        with self.lock:
            self.loud_since_mark = False

    def say(self, samples):
        with self.lock:
            self.mouth.extend(samples)

    def wait_said(self, within=30):
        wait_for("what was said to be sent", within, lambda: not self.mouth)

    def report(self, **extra):
        out = {
            "call_id": self.call_id,
            "node_rtp": f"{self.remote_rtp[0]}:{self.remote_rtp[1]}",
            "heard_ms": self.heard_samples // 8,
            "sent_packets": self.sent,
        }
        out.update(extra)
        print(json.dumps(out), flush=True)


def speech(path, seconds):
    with wave.open(path, "rb") as w:
        if w.getframerate() != 8000 or w.getsampwidth() != 2 or w.getnchannels() != 1:
            fail(f"{path}: want 8 kHz mono 16-bit")
        raw = w.readframes(int(8000 * seconds))
    return list(struct.unpack(f"<{len(raw) // 2}h", raw))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["listen", "voicemail", "hold"])
    ap.add_argument("--seconds", type=float, default=10, help="hold: how long the call stays up")
    ap.add_argument("--answered", help="hold: a file written once the call is answered")
    ap.add_argument("--host", required=True, help="this host's address, as callers reach it")
    ap.add_argument("--proxy", required=True, help="the published SIP port, IP:PORT")
    ap.add_argument("--number", default="5149073400")
    ap.add_argument("--from", dest="caller", default="5145550100")
    ap.add_argument("--speech", help="8 kHz WAV the voicemail says")
    a = ap.parse_args()
    ip, _, port = a.proxy.rpartition(":")
    call = Call(a.host, (ip, int(port)), a.number, a.caller)
    call.invite()
    if a.what == "hold":
        call.wait_prompt_start()
        if a.answered:
            with open(a.answered, "w") as f:
                f.write(call.call_id + "\n")
        end = time.monotonic() + a.seconds
        while time.monotonic() < end and not call.engine_bye:
            call.read_sip()
        if call.engine_bye:
            fail("the node hung up the held call")
        heard = call.heard_samples
        status = call.hang_up()
        call.report(bye=status, heard_ms_total=heard // 8)
        return
    if a.what == "listen":
        call.wait_prompt_start()
        heard = call.heard_samples
        status = call.hang_up()
        call.report(bye=status, heard_before_bye_ms=heard // 8)
        return
    if not a.speech:
        fail("voicemail needs --speech")
    call.wait_prompt_start()  # language choice
    call.press("9")  # English
    call.wait_prompt_start()  # welcome, main menu
    call.press("2")  # support
    call.wait_prompt_start()  # emergency menu
    call.press("1")  # no calls at all: S1
    call.wait_prompt_start()  # call you back at this number?
    call.press("1")  # yes
    call.wait_prompt_end()  # instructions, tone
    call.say(speech(a.speech, 2.0))
    call.wait_said()
    call.press("#")
    # The engine says the ticket number and hangs up, or the caller does after it.
    deadline = time.monotonic() + 30
    while not call.engine_bye and time.monotonic() < deadline:
        call.read_sip()
    status = "engine hung up" if call.engine_bye else call.hang_up()
    call.stop.set()
    call.report(bye=status)


if __name__ == "__main__":
    main()
