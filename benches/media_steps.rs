//! Per-packet steps of the media path, one 20 ms G.711 packet (160 samples) each.
//! Run: nice -n 10 cargo bench --bench media_steps

use std::hint::black_box;

use astreinte::media::dtmf::DtmfDetector;
use astreinte::media::g711;
use astreinte::media::jitter::{JitterBuffer, Out, Push};
use astreinte::media::rfc4733::{EventReceiver, TelephoneEvent};
use astreinte::media::stats::RecvStats;
use astreinte::media::vad::FrameVad;
use astreinte::media::Codec;
use criterion::{criterion_group, criterion_main, Criterion};

fn speechy() -> [i16; 160] {
    let mut f = [0i16; 160];
    for (i, s) in f.iter_mut().enumerate() {
        let t = i as f32 / 8000.0;
        let mut x = 0.0;
        for h in 1..12 {
            x += (2.0 * std::f32::consts::PI * 140.0 * h as f32 * t).sin() / h as f32;
        }
        *s = (x * 6000.0) as i16;
    }
    f
}

fn packet() -> Vec<u8> {
    let mut p = vec![
        0x80, 0x00, 0x12, 0x34, 0, 0, 0x10, 0, 0xde, 0xad, 0xbe, 0xef,
    ];
    let mut enc = [0u8; 160];
    g711::encode(Codec::Pcmu, &speechy(), &mut enc);
    p.extend_from_slice(&enc);
    p
}

fn steps(c: &mut Criterion) {
    let pkt = packet();
    let pcm = speechy();
    let mut g = c.benchmark_group("per_packet");
    g.bench_function("parse_rtp", |b| {
        b.iter(|| {
            let r = rtp_rs::RtpReader::new(black_box(&pkt)).ok();
            black_box(r.map(|r| (r.sequence_number(), r.timestamp(), r.payload().len())))
        })
    });
    g.bench_function("decode_pcmu_160", |b| {
        let mut out = [0i16; 160];
        b.iter(|| g711::decode(Codec::Pcmu, black_box(&pkt[12..]), &mut out))
    });
    g.bench_function("encode_pcmu_160", |b| {
        let mut out = [0u8; 160];
        b.iter(|| g711::encode(Codec::Pcmu, black_box(&pcm), &mut out))
    });
    g.bench_function("encode_pcma_160", |b| {
        let mut out = [0u8; 160];
        b.iter(|| g711::encode(Codec::Pcma, black_box(&pcm), &mut out))
    });
    g.bench_function("transcode_pcmu_to_pcma_160", |b| {
        let mut out = [0u8; 160];
        b.iter(|| {
            for (o, &x) in out.iter_mut().zip(black_box(&pkt[12..])) {
                *o = g711::transcode_byte(Codec::Pcmu, Codec::Pcma, x);
            }
        })
    });
    g.bench_function("vad_160", |b| {
        let mut v = FrameVad::new();
        b.iter(|| v.is_speech(black_box(&pcm)))
    });
    g.bench_function("goertzel_dtmf_160", |b| {
        let mut d = DtmfDetector::new();
        b.iter(|| d.process(black_box(&pcm)))
    });
    g.bench_function("stats_rfc3550", |b| {
        let mut s = RecvStats::default();
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(1);
            s.handle_packet(i as u16, i * 160, i * 160 + (i & 7))
        })
    });
    // In order (each packet played out at once), then every pair swapped (each goes through
    // the ring).
    for (name, order) in [
        ("jitter_push_pop_160", (|i| i) as fn(u64) -> u64),
        ("jitter_reordered_160", |i| i ^ 1),
    ] {
        g.bench_function(name, |b| {
            let mut jb = JitterBuffer::new(3);
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                let mut n = 0;
                if jb.push(order(i), black_box(&pcm)) == Push::Now {
                    n += pcm.len();
                }
                while let Some(o) = jb.pop_ready() {
                    if let Out::Frame(f) = o {
                        n += f.len();
                    }
                }
                n
            })
        });
    }
    g.bench_function("rfc4733_event", |b| {
        let mut r = EventReceiver::new();
        let mut ts = 0u32;
        b.iter(|| {
            ts = ts.wrapping_add(1);
            TelephoneEvent::parse(black_box(&[5, 10, 0, 160]))
                .and_then(|ev| r.handle_event(ts / 8, ev))
        })
    });
    g.bench_function("recorder_write_160", |b| {
        let dir = tempfile::tempdir().unwrap();
        let mut r =
            astreinte::media::recorder::Recorder::create(&dir.path().join("b.wav")).unwrap();
        b.iter(|| r.write(black_box(&pcm)).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1))
        .sample_size(30);
    targets = steps
}
criterion_main!(benches);
