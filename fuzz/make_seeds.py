#!/usr/bin/env python3
"""Writes the hand-made seed inputs under fuzz/corpus/<target>/seed-*.

The SIP seeds are the SIPp scenarios' messages (tests/sipp/) with their [placeholders] filled
in, the RTP seeds are packets of SIPp's bundled pcaps when they are installed
(/usr/share/sip-tester) or built here otherwise, and the WAV seeds are small recordings as the
recorder leaves them. The RFC 4475 messages are not copied: scripts/fuzz.sh passes
tests/fixtures/sip-torture to libFuzzer as a second corpus directory.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def sip(text, body=""):
    head = "\r\n".join(l.strip() for l in text.strip().splitlines())
    return head + "\r\nContent-Length: %d\r\n\r\n" % len(body.encode()) + body


SDP = ("v=0\r\no=sipp 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
       "t=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
       "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n")
COMMON = """Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-{b}
From: "SIPp caller" <sip:5145550100@127.0.0.1:5999>;tag=1SIPpTag001
To: <sip:+15149073400@127.0.0.1:5060>{totag}
Call-ID: 1-4242@127.0.0.1
CSeq: {cseq}
Contact: <sip:5145550100@127.0.0.1:5999;transport=UDP>
Max-Forwards: 70"""


def req(line, b, cseq, extra="", body="", totag=""):
    return sip(line + "\n" + COMMON.format(b=b, cseq=cseq, totag=totag) + "\n" + extra, body)


invite = req("INVITE sip:+15149073400@127.0.0.1:5060 SIP/2.0", "1", "1 INVITE",
             "Content-Type: application/sdp\nSupported: timer\nSession-Expires: 1800", SDP)
ack = req("ACK sip:+15149073400@127.0.0.1:5060 SIP/2.0", "2", "1 ACK")
info = req("INFO sip:+15149073400@127.0.0.1:5060 SIP/2.0", "3", "2 INFO",
           "Content-Type: application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")
reinvite = req("INVITE sip:+15149073400@127.0.0.1:5060 SIP/2.0", "4", "3 INVITE",
               "Content-Type: application/sdp", SDP.replace("a=fmtp", "a=sendonly\r\na=fmtp"))
bye = req("BYE sip:+15149073400@127.0.0.1:5060 SIP/2.0", "5", "4 BYE")
cancel = req("CANCEL sip:+15149073400@127.0.0.1:5060 SIP/2.0", "1", "1 CANCEL")
options = req("OPTIONS sip:+15149073400@127.0.0.1:5060 SIP/2.0", "6", "1 OPTIONS",
              "Accept: application/sdp")
register = req("REGISTER sip:127.0.0.1 SIP/2.0", "7", "1 REGISTER", "Expires: 3600")
challenge = sip("""SIP/2.0 401 Unauthorized
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-8
From: <sip:pager@127.0.0.1>;tag=abc
To: <sip:tech@127.0.0.1>;tag=1SIPpTag011
Call-ID: 1-4243@127.0.0.1
CSeq: 1 INVITE
WWW-Authenticate: Digest realm="pbx.example", nonce="1nonce1", qop="auth", algorithm=MD5""")
ok = sip("""SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-9
From: <sip:pager@127.0.0.1>;tag=abc
To: <sip:tech@127.0.0.1>;tag=1SIPpTag011
Call-ID: 1-4243@127.0.0.1
CSeq: 2 INVITE
Record-Route: <sip:proxy.example;lr>
Contact: <sip:tech@127.0.0.1:5999>
Content-Type: application/sdp""", SDP)
# The bug this fuzzing started from: NBSP (U+00A0) between transport and host.
nbsp = ("OPTIONS sip:+15149073400@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP\u00a0127.0.0.1;branch=z9hG4bK1\r\n"
        "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: nbsp\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n")
compact = ("OPTIONS sip:611@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK2\r\n"
           "f: <sip:a@127.0.0.1>;tag=1\r\nt: sip:611@127.0.0.1\r\ni: c\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n")

# The far end of a call the harness places (an input opening with a response): placeholders
# are filled with what the endpoint sent (astreinte::fuzzing).
def resp(status, extra="", body="", cseq="[cseq] INVITE"):
    return sip("SIP/2.0 " + status + """
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=[branch]
From: <sip:astreinte@127.0.0.1:5060>;tag=[from_tag]
To: <sip:+15145001004@127.0.0.1:5999>;tag=far1
Call-ID: [call_id]
CSeq: """ + cseq + "\n" + extra, body)


uac = [
    resp("100 Trying"),
    resp("401 Unauthorized", 'WWW-Authenticate: Digest realm="pbx.example", nonce="n1", qop="auth", algorithm=MD5'),
    resp("180 Ringing"),
    resp("200 OK", "Contact: <sip:tech@127.0.0.1:5999>\nRecord-Route: <sip:127.0.0.1:5999;lr>\n"
         "Content-Type: application/sdp", SDP),
    sip("""BYE sip:astreinte@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-far2
From: <sip:+15145001004@127.0.0.1:5999>;tag=far1
To: <sip:astreinte@127.0.0.1:5060>;tag=[from_tag]
Call-ID: [call_id]
CSeq: 7 BYE
Max-Forwards: 70"""),
]
# The same dialog as invite-dialog, with our To tag filled in so it matches.
dialog = [invite] + [m.replace("To: <sip:+15149073400@127.0.0.1:5060>",
                               "To: <sip:+15149073400@127.0.0.1:5060>;tag=[to_tag]")
                     for m in (ack, info, reinvite, bye)]

# Datagrams of one input are cut at two NULs (src/fuzzing.rs): one NUL may sit in a message.
SEP = "\0\0"
for target in ("sip_message", "sip_message_text"):
    put(target, "uac-auth-answered-bye", SEP.join(uac))
    put(target, "uas-dialog-tagged", SEP.join(dialog))
    put(target, "invite-dialog", SEP.join([invite, ack, info, reinvite, bye]))
    put(target, "invite-cancel", invite + SEP + cancel)
    put(target, "options", options)
    put(target, "register", register)
    put(target, "401-digest", challenge)
    put(target, "200-sdp", ok)
    put(target, "nbsp-via", nbsp)
    put(target, "compact", compact)

put("sdp", "offer", SDP)
put("sdp", "hold", SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0") + "a=inactive\r\n")
put("sdp", "two-streams",
    "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n"
    "m=video 5000 RTP/AVP 31\r\nm=audio 4000/2 RTP/AVP 96 8\r\na=rtpmap:96 PCMU/8000\r\n"
    "a=ptime:30\r\na=recvonly\r\n")


def pcap_udp_payloads(path):
    with open(path, "rb") as f:
        b = f.read()
    off, out = 24, []
    while off + 16 <= len(b):
        incl = struct.unpack("<I", b[off + 8:off + 12])[0]
        pkt = b[off + 16:off + 16 + incl]
        off += 16 + incl
        ihl = (pkt[14] & 0x0F) * 4
        out.append(pkt[14 + ihl + 8:])
    return out


def rtp(seq, ts, pt=0, marker=False, payload=b"\xff" * 160, ssrc=0x1234):
    return struct.pack(">BBHII", 0x80, pt | (0x80 if marker else 0), seq, ts, ssrc) + payload


SIPP = "/usr/share/sip-tester"
if os.path.exists(os.path.join(SIPP, "dtmf_2833_1.pcap")):
    pkts = pcap_udp_payloads(os.path.join(SIPP, "dtmf_2833_1.pcap"))
    put("rtp", "rfc4733-start", pkts[0])
    put("rtp", "rfc4733-end", pkts[-1])
    put("rtp", "g711a", pcap_udp_payloads(os.path.join(SIPP, "g711a.pcap"))[0])
else:
    put("rtp", "rfc4733-start", rtp(1, 8000, 101, True, bytes([1, 10, 0, 160])))
    put("rtp", "rfc4733-end", rtp(8, 8000, 101, False, bytes([1, 0x8A, 3, 0x20])))
    put("rtp", "g711a", rtp(1, 160, 8, False, b"\xd5" * 160))
# Padding, a CSRC and a header extension.
put("rtp", "rtp-padded", bytes([0xB1, 0]) + rtp(7, 1120)[2:12] + b"\0\0\0\x09" +
    b"\xbe\xde\x00\x01\x10\xaa\0\0" + b"\x7f" * 160 + b"\0\0\0\x04")
sr = (struct.pack(">BBHI", 0x81, 200, 12, 0x1234) + struct.pack(">QIII", 0x0102030405060708, 160, 10, 1600)
      + struct.pack(">IIIIII", 7, (64 << 24) | 3, 70000, 12, 0x12345678, 65536))
sdes = struct.pack(">BBHI", 0x81, 202, 2, 0x1234) + b"\x01\x02ab"
put("rtp", "rtcp-sr-sdes", sr + sdes)
put("rtp", "rtcp-rr", struct.pack(">BBHI", 0x81, 201, 7, 7) + struct.pack(">IIIIII", 0x1234, 3, 5, 9, 0, 0))
# (seq, ts, ssrc) records: in order, reordered, duplicated, a gap, a wrap and a restart.
recs = b""
for seq in [65530, 65531, 65533, 65532, 65533, 65535, 0, 1, 5, 4, 3000, 3001, 2, 40000]:
    recs += struct.pack(">HII", seq, seq * 160 & 0xFFFFFFFF, 0x00A00000 | (seq & 0xFF))
put("rtp", "seq-records", recs)


def wav(samples, data_size=0, extra=b""):
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = b"".join(struct.pack("<h", s) for s in samples)
    return (b"RIFF" + struct.pack("<I", 0) + b"WAVE" + extra + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", data_size) + body)


put("wav_recovery", "unfinished", wav([i * 37 % 3000 for i in range(80)]))
put("wav_recovery", "odd-byte", wav([100, -100, 5])[:-1])
put("wav_recovery", "list-chunk", wav([1, 2, 3], extra=b"LIST" + struct.pack("<I", 3) + b"abc\0"))


# Prompt uploads: the committed MP3 and Ogg fixtures, two small shipped prompts, and small
# hand-made WAVs of each kind the converter reads (kept small: the corpus stays under 200 KB).
import hashlib
import hmac
import math
import shutil

ROOT = os.path.dirname(HERE)


def copy(target, name, path):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    shutil.copyfile(os.path.join(ROOT, path), os.path.join(d, "seed-" + name))


copy("prompt_upload", "tone-44k1-stereo.mp3", "tests/fixtures/audio/tone-1k-44k1-stereo.mp3")
copy("prompt_upload", "tone-48k-mono.ogg", "tests/fixtures/audio/tone-1k-48k-mono.ogg")
copy("prompt_upload", "beep.wav", "prompts/en/beep.wav")
copy("prompt_upload", "digit-2.wav", "prompts/en/digit-2.wav")


def tone(n, rate, amp=0.5):
    return [amp * math.sin(2 * math.pi * 440 * i / rate) for i in range(n)]


def wav_file(fmt_tag, channels, rate, bits, frames, data_size=None, ext=b""):
    width = bits // 8
    raw = b""
    for x in frames:
        for _ in range(channels):
            if fmt_tag == 3:
                raw += struct.pack("<f", x)
            elif fmt_tag in (6, 7):  # A-law / mu-law: any byte is a sample
                raw += bytes([int((x + 1) * 100) & 0xFF])
            elif bits == 8:
                raw += bytes([int(128 + x * 127)])
            else:
                raw += int(x * (2 ** (bits - 1) - 1)).to_bytes(width, "little", signed=True)
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * channels * width,
                      channels * width, bits) + ext
    size = len(raw) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + raw
    return b"RIFF" + struct.pack("<I", 4 + len(body) - 4) + body


put("prompt_upload", "pcm16-8k-mono.wav", wav_file(1, 1, 8000, 16, tone(2000, 8000)))
put("prompt_upload", "pcm16-16k-stereo.wav", wav_file(1, 2, 16000, 16, tone(3400, 16000)))
put("prompt_upload", "pcm8-11k-mono.wav", wav_file(1, 1, 11025, 8, tone(2400, 11025)))
put("prompt_upload", "pcm24-8k-mono.wav", wav_file(1, 1, 8000, 24, tone(1700, 8000)))
put("prompt_upload", "float32-22k-mono.wav", wav_file(3, 1, 22050, 32, tone(4500, 22050)))
put("prompt_upload", "alaw-8k-mono.wav", wav_file(6, 1, 8000, 8, tone(2000, 8000), ext=b"\0\0"))
put("prompt_upload", "mulaw-8k-stereo.wav", wav_file(7, 2, 8000, 8, tone(1700, 8000), ext=b"\0\0"))
# A recorder that never wrote the length; a clipped one; a silent one; a too-short one.
put("prompt_upload", "streaming-length.wav", wav_file(1, 1, 8000, 16, tone(1700, 8000), 0xFFFFFFFF))
put("prompt_upload", "clipped.wav", wav_file(1, 1, 8000, 16, [1.0, -1.0] * 900))
put("prompt_upload", "silent.wav", wav_file(1, 1, 8000, 16, [0.0] * 1700))
put("prompt_upload", "short.wav", wav_file(1, 1, 8000, 16, tone(400, 8000)))

# Configuration files: the shipped one and small ones that reach each kind of refusal.
copy("config", "astreinte.toml", "config/astreinte.toml")
put("config", "empty", "")
put("config", "sip-only", '[sip]\nlisten = "127.0.0.1:5060"\ntrusted = ["127.0.0.0/8", "::1"]\n')
put("config", "syntax-error", '[sip]\nlisten = "127.0.0.1:5060"\nnumbers = ["611"\n')
put("config", "unknown-key", '[sip]\nlisten = "127.0.0.1:5060"\nlisen = 3\n')
put("config", "bad-trusted", '[sip]\nlisten = "127.0.0.1:5060"\ntrusted = [\n  "127.0.0.0/8",\n  "10.0.0/8",\n]\n')
put("config", "http-media",
    '[http]\nlisten = "127.0.0.1:8080"\npublic_url = "https://a.example/"\n'
    'trusted_proxies = ["10.0.0.0/8"]\nack_link_hours = 0\n\n[media]\nrtp_ports = "30000-20000"\n')

# Accounts CSV: the integration test's file, the optional language column, and refusals.
CSV_HEAD = ("account,company,address,numbers,admin_name,admin_phone,admin_email,technical_name,"
            "technical_phone,technical_email,billing_name,billing_phone,billing_email")
put("accounts_csv", "two-accounts", CSV_HEAD + "\n"
    'ACME,Acme Plomberie inc.,"1200 rue Peel, Montréal",+1 514 555 0199; 514-555-0198,Lise Tremblay,'
    "5145550190,lise@acme.example,Jean Roy,5145550191,jean@acme.example,,,\n"
    "CLIN,Clinique Verdun,,4385550123,,,,Ana Diaz,,ana@clin.example,Bo Li,,bo@clin.example\n")
put("accounts_csv", "language", CSV_HEAD + ",language\n"
    "A1,Un,,611|(514) 907-3400,,,,,,,,,,FR\nB2,Deux,,+44 20 7946 0958,,,,,,,,,,en\n")
put("accounts_csv", "duplicate-number", CSV_HEAD + "\nA,a,,5145550100,,,,,,,,,\nB,b,,1 514 555 0100,,,,,,,,,\n")
put("accounts_csv", "bad-row", CSV_HEAD + '\nA,"a ""quoted""",,12,,,,,,,,,\nB,b,,x5145550100\n')

# Acknowledgement links, signed with the harness's key and clock (astreinte::fuzzing::ack_link).
ACK_KEY = b"0123456789abcdef0123456789abcdef"
ACK_NOW = 1741834800


def ack(ticket, person, expires, person_enc=None):
    sig = hmac.new(ACK_KEY, ("ack\n%s\n%s\n%d" % (ticket, person, expires)).encode(), hashlib.sha256)
    return "/ack/%s?p=%s&e=%d&s=%s" % (ticket, person_enc or person, expires, sig.hexdigest())


put("ack_link", "valid", ack("20250313001", "tech1", ACK_NOW + 72 * 3600))
put("ack_link", "valid-encoded-person",
    ack("42", "Zoé Tremblay&co=1", ACK_NOW + 3600, "Zo%C3%A9%20Tremblay%26co%3D1"))
put("ack_link", "expired", ack("20250313001", "tech1", ACK_NOW - 1))
put("ack_link", "tampered", ack("20250313001", "tech1", ACK_NOW + 3600).replace("tech1", "coo"))
put("ack_link", "uppercase-sig", ack("7", "a+b", ACK_NOW + 60).upper().replace("/ACK/", "/ack/")
    .replace("?P=", "?p=").replace("&E=", "&e=").replace("&S=", "&s="))
put("ack_link", "missing-part", "/ack/20250313001?p=tech1&e=1741834800")

# X-Forwarded-For: peer, trusted proxies, then header values (astreinte::fuzzing::client_ip).
put("client_ip", "behind-proxy", "10.0.0.2\n10.0.0.0/8, ::1\n203.0.113.7, 10.0.0.9\n")
put("client_ip", "spoofed-left", "10.0.0.2\n10.0.0.0/8\n1.2.3.4, 198.51.100.3:443\n10.0.0.5\n")
put("client_ip", "ipv6-mapped", "::ffff:10.0.0.2\n10.0.0.0/8,2001:db8::/32\n[2001:db8::1]:443, ::ffff:192.0.2.9\n")
put("client_ip", "untrusted-peer", "192.0.2.1\n10.0.0.0/8\n10.0.0.1\n")
put("client_ip", "garbage-hop", "127.0.0.1\n127.0.0.1\n192.0.2.5, unknown, 127.0.0.1\n")
