//! Load tool for the media engine (in-process): N concurrent legs, each playing the greeting in a
//! loop while recording the far end with VAD and in-band DTMF detection on; the far end of each
//! leg sends 20 ms speech packets. Measured on the receiving side with kernel timestamps
//! (SO_TIMESTAMPNS): inter-arrival deviation from 20 ms (p50/p99/p99.9/max), loss both ways,
//! and the media threads' CPU time per packet handled (from /proc/self/task/*/stat).
//!
//! nice -n 10 cargo run --release --bin astreinte-mediaload -- --calls 1000 --seconds 20

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use astreinte::media::{
    g711, Codec, MediaConfig, MediaDirection, MediaEngine, NegotiatedMedia, PlayOptions, PromptRef,
    RecordOptions,
};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Concurrent legs.
    #[arg(long, default_value_t = 1000)]
    calls: usize,
    /// Measured seconds (after `--warmup`).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Media threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Do not record (play and detect only).
    #[arg(long)]
    no_record: bool,
    /// Bridge legs in pairs instead (no prompts, no recording): far end A's packets are relayed
    /// to far end B and back; reports the added latency send -> kernel receive.
    #[arg(long)]
    bridge: bool,
    /// SCHED_FIFO priority of the media threads (0: normal scheduler).
    #[arg(long, default_value_t = 10)]
    rt_prio: u8,
    /// Pin media thread i to CPU i.
    #[arg(long)]
    pin: bool,
    #[arg(long, default_value = "prompts")]
    prompts: String,
    #[arg(long, default_value = "40000-49999")]
    ports: String,
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn sleep_until(ns: u64) {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: valid timespec; absolute sleep on the monotonic clock.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    };
}

/// utime + stime (clock ticks) of this process's threads whose name starts with `prefix`.
fn thread_cpu_ticks(prefix: &str) -> u64 {
    let (u, s) = thread_cpu_split(prefix);
    u + s
}

/// (utime, stime) in clock ticks of the threads whose name starts with `prefix`.
fn thread_cpu_split(prefix: &str) -> (u64, u64) {
    let mut total = (0, 0);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return total;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the ")" of comm: state is field 3; utime 14, stime 15.
        if let Some(rest) = stat.rsplit_once(')').map(|x| x.1) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0);
            let st: u64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
            total.0 += ut;
            total.1 += st;
        }
    }
    total
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse().ok())
        .unwrap_or(0)
}

fn raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer, then the same struct back in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

struct Leg {
    sock: UdpSocket,
    last_arrival: u64,
    last_seq: Option<u16>,
    received: u64,
    lost: u64,
}

fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<()> {
    let args = Args::parse();
    raise_nofile();
    if !Path::new(&args.prompts).join("en/greeting.wav").exists() {
        bail!(
            "no prompts at {} (run from the repository root or pass --prompts)",
            args.prompts
        );
    }
    let rec_dir = std::env::temp_dir().join(format!("astreinte-mediaload-{}", std::process::id()));
    std::fs::create_dir_all(&rec_dir)?;
    let cfg = MediaConfig {
        rtp_ports: args.ports.clone(),
        prompts_dir: args.prompts.clone(),
        threads: args.threads,
        realtime_priority: args.rt_prio,
        pin_threads: args.pin,
        ..MediaConfig::default()
    };
    let rss0 = rss_kib();
    let engine = MediaEngine::start(&cfg, "127.0.0.1".parse()?)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    // The speech the far ends send: the English greeting, PCMU, looped.
    let speech: Vec<i16> =
        hound::WavReader::open(Path::new(&args.prompts).join("en/greeting.wav"))?
            .samples::<i16>()
            .collect::<Result<_, _>>()?;
    let mut speech_u = vec![0u8; speech.len() / 160 * 160];
    g711::encode(Codec::Pcmu, &speech[..speech_u.len()], &mut speech_u);
    let speech_u = Arc::new(speech_u);

    let mut sessions = Vec::with_capacity(args.calls);
    let mut legs = Vec::with_capacity(args.calls);
    let mut targets = Vec::with_capacity(args.calls);
    for i in 0..args.calls {
        let s = if args.bridge && i % 2 == 1 {
            engine.open_session_near(&format!("load-{i}"), &sessions[i - 1])
        } else {
            engine.open_session(&format!("load-{i}"))
        }
        .with_context(|| format!("opening leg {i}"))?;
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_nonblocking(true)?;
        let one: libc::c_int = 1;
        // SAFETY: valid fd and option value.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        s.apply(NegotiatedMedia {
            remote_rtp: sock.local_addr()?,
            codec: Codec::Pcmu,
            payload_type: 0,
            telephone_event_pt: Some(101),
            direction: MediaDirection::SendRecv,
            ptime_ms: 20,
        });
        if args.bridge {
            if i % 2 == 1 {
                s.bridge(&sessions[i - 1])?;
            }
        } else {
            s.play(
                &[PromptRef::named("en/greeting")],
                PlayOptions {
                    barge_in: true,
                    repeat: true,
                },
            )?;
        }
        if !args.no_record && !args.bridge {
            s.record(
                rec_dir.join(format!("{i}.wav")),
                RecordOptions {
                    max_seconds: 3600,
                    end_after_silence_ms: None,
                },
            );
        }
        targets.push(s.local_rtp_addr());
        legs.push(Leg {
            sock,
            last_arrival: 0,
            last_seq: None,
            received: 0,
            lost: 0,
        });
        sessions.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let rss1 = rss_kib();

    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let sent_total = Arc::new(AtomicU64::new(0));

    // Sender: each far end sends one packet every 20 ms, phases spread over the 20 ms cycle.
    let send_socks: Vec<UdpSocket> = legs
        .iter()
        .map(|l| l.sock.try_clone())
        .collect::<Result<_, _>>()?;
    let sender = {
        let stop = stop.clone();
        let sent_total = sent_total.clone();
        let speech_u = speech_u.clone();
        std::thread::Builder::new()
            .name("load-send".into())
            .spawn(move || {
                let n = send_socks.len();
                let start = monotonic_ns() + 10_000_000;
                let mut pkt = [0u8; 172];
                pkt[0] = 0x80;
                let frames = speech_u.len() / 160;
                let mut tick = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // 1 ms sub-ticks: legs with i % 20 == sub send now.
                    let sub = (tick % 20) as usize;
                    let round = tick / 20;
                    sleep_until(start + tick * 1_000_000);
                    let mut i = sub;
                    while i < n {
                        let seq = (round as u16).wrapping_add(i as u16 * 7);
                        pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                        pkt[4..8].copy_from_slice(&((round as u32) * 160).to_be_bytes());
                        pkt[8..12].copy_from_slice(&(i as u32).to_be_bytes());
                        let f = (round as usize + i) % frames;
                        pkt[12..].copy_from_slice(&speech_u[f * 160..(f + 1) * 160]);
                        // The send time (CLOCK_REALTIME, as SO_TIMESTAMPNS) for bridge latency.
                        pkt[12..20].copy_from_slice(&realtime_ns().to_be_bytes());
                        if send_socks[i].send_to(&pkt, targets[i]).is_ok() {
                            sent_total.fetch_add(1, Ordering::Relaxed);
                        }
                        i += 20;
                    }
                    tick += 1;
                }
            })?
    };

    // Receiver: epoll over the far-end sockets, recvmsg with the kernel receive timestamp.
    let receiver = {
        let bridge = args.bridge;
        let stop = stop.clone();
        let measuring = measuring.clone();
        std::thread::Builder::new().name("load-recv".into()).spawn(
            move || -> (Vec<u32>, Vec<u32>, Vec<Leg>) {
                let mut lats: Vec<u32> = Vec::with_capacity(if bridge { 4_000_000 } else { 0 });
                // SAFETY: plain syscalls on descriptors we own for the thread's life.
                let ep = unsafe { libc::epoll_create1(0) };
                for (i, l) in legs.iter().enumerate() {
                    let mut ev = libc::epoll_event {
                        events: libc::EPOLLIN as u32,
                        u64: i as u64,
                    };
                    unsafe {
                        libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, l.sock.as_raw_fd(), &mut ev)
                    };
                }
                let mut devs: Vec<u32> = Vec::with_capacity(4_000_000);
                let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 512];
                let mut buf = [0u8; 512];
                let mut cmsg = [0u64; 16];
                while !stop.load(Ordering::Relaxed) {
                    let n = unsafe {
                        libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 100)
                    };
                    let measure = measuring.load(Ordering::Relaxed);
                    for ev in events.iter().take(n.max(0) as usize) {
                        let l = &mut legs[ev.u64 as usize];
                        loop {
                            let mut iov = libc::iovec {
                                iov_base: buf.as_mut_ptr().cast(),
                                iov_len: buf.len(),
                            };
                            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                            msg.msg_iov = &mut iov;
                            msg.msg_iovlen = 1;
                            msg.msg_control = cmsg.as_mut_ptr().cast();
                            msg.msg_controllen = std::mem::size_of_val(&cmsg) as _;
                            let r = unsafe { libc::recvmsg(l.sock.as_raw_fd(), &mut msg, 0) };
                            if r < 0 {
                                break;
                            }
                            // Only the RTP audio stream: RTCP for another leg lands here too
                            // (far-end ports are ephemeral, so port+1 may be another leg's).
                            if r < 12 || buf[0] >> 6 != 2 || buf[1] & 0x7F != 0 {
                                continue;
                            }
                            let mut kts = 0u64;
                            // SAFETY: walking the control buffer the kernel filled, with its macros.
                            unsafe {
                                let mut c = libc::CMSG_FIRSTHDR(&msg);
                                while !c.is_null() {
                                    if (*c).cmsg_level == libc::SOL_SOCKET
                                        && (*c).cmsg_type == libc::SCM_TIMESTAMPNS
                                    {
                                        let ts: libc::timespec =
                                            std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                                        kts = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
                                    }
                                    c = libc::CMSG_NXTHDR(&msg, c);
                                }
                            }
                            let seq = u16::from_be_bytes([buf[2], buf[3]]);
                            if measure && bridge && r >= 20 {
                                let sent = u64::from_be_bytes([
                                    buf[12], buf[13], buf[14], buf[15], buf[16], buf[17], buf[18],
                                    buf[19],
                                ]);
                                lats.push((kts.saturating_sub(sent) / 1000) as u32);
                            }
                            if measure {
                                if let Some(prev) = l.last_seq {
                                    let d = seq.wrapping_sub(prev);
                                    if d > 1 && d < 30000 {
                                        l.lost += (d - 1) as u64;
                                    }
                                    if d == 1 && l.last_arrival > 0 {
                                        let gap = kts.saturating_sub(l.last_arrival) as i64;
                                        devs.push((gap - 20_000_000).unsigned_abs() as u32 / 1000);
                                    }
                                }
                                l.received += 1;
                            }
                            l.last_seq = Some(seq);
                            l.last_arrival = kts;
                        }
                    }
                }
                unsafe { libc::close(ep) };
                (devs, lats, legs)
            },
        )?
    };

    std::thread::sleep(Duration::from_secs(args.warmup));
    measuring.store(true, Ordering::Relaxed);
    let sent0 = sent_total.load(Ordering::Relaxed);
    let cpu0 = thread_cpu_ticks("media-");
    let split0 = thread_cpu_split("media-");
    let load_cpu0 = thread_cpu_ticks("load-");
    let rec0 = thread_cpu_ticks("media-rec");
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(args.seconds));
    let cpu1 = thread_cpu_ticks("media-");
    let split1 = thread_cpu_split("media-");
    let rec1 = thread_cpu_ticks("media-rec");
    let load_cpu1 = thread_cpu_ticks("load-");
    let elapsed = t0.elapsed().as_secs_f64();
    let sent_in_window = sent_total.load(Ordering::Relaxed) - sent0;
    measuring.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    let (mut devs, mut lats, legs) = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    std::thread::sleep(Duration::from_millis(100));

    let mut engine_received = 0u64;
    let mut engine_lost = 0i64;
    let mut engine_sent = 0u64;
    rt.block_on(async {
        for s in sessions {
            let st = s.close().await;
            engine_received += st.packets_received;
            engine_lost += st.packets_lost;
            engine_sent += st.packets_sent;
        }
    });
    engine.shutdown();
    let _ = std::fs::remove_dir_all(&rec_dir);

    devs.sort_unstable();
    lats.sort_unstable();
    if args.bridge {
        println!(
            "bridge: far A send -> far B kernel receive through the engine (us, {} samples): p50 {} p99 {} p99.9 {} max {}",
            lats.len(),
            pct(&lats, 0.5),
            pct(&lats, 0.99),
            pct(&lats, 0.999),
            lats.last().copied().unwrap_or(0)
        );
    }
    let recv_total: u64 = legs.iter().map(|l| l.received).sum();
    let lost_total: u64 = legs.iter().map(|l| l.lost).sum();
    let hz = 100.0; // USER_HZ
    let media_cpu_s = (cpu1 - cpu0) as f64 / hz;
    let load_cpu_s = (load_cpu1 - load_cpu0) as f64 / hz;
    let handled = recv_total + sent_in_window; // engine sent (= tool received) + engine received
    println!(
        "calls {}  measured {:.1} s  media threads {}",
        args.calls,
        elapsed,
        if args.threads == 0 {
            "per core".to_string()
        } else {
            args.threads.to_string()
        }
    );
    println!(
        "engine -> far end: {} packets, lost {} ({:.4} %)",
        recv_total,
        lost_total,
        lost_total as f64 * 100.0 / (recv_total + lost_total).max(1) as f64
    );
    println!(
        "engine sent {} packets in all ({:.1} per leg per second over the whole run)",
        engine_sent,
        engine_sent as f64 / args.calls.max(1) as f64 / (args.warmup + args.seconds) as f64
    );
    println!(
        "far end -> engine: engine counted {} received, RFC 3550 lost {} (whole run)",
        engine_received, engine_lost
    );
    println!(
        "inter-arrival deviation from 20 ms (us, kernel timestamps, {} samples): p50 {} p99 {} p99.9 {} max {}",
        devs.len(),
        pct(&devs, 0.5),
        pct(&devs, 0.99),
        pct(&devs, 0.999),
        devs.last().copied().unwrap_or(0)
    );
    println!(
        "media CPU {:.2} s over {:.1} s = {:.2} us per packet handled ({} sent + received); load tool CPU {:.2} s",
        media_cpu_s,
        elapsed,
        media_cpu_s * 1e6 / handled.max(1) as f64,
        handled,
        load_cpu_s
    );
    println!(
        "  of which user {:.2} s, system (kernel UDP, epoll, timers, file writes) {:.2} s; recording writer threads {:.2} s",
        (split1.0 - split0.0) as f64 / hz,
        (split1.1 - split0.1) as f64 / hz,
        (rec1 - rec0) as f64 / hz
    );
    println!(
        "RSS: {} KiB before, {} KiB with {} legs open: {:.1} KiB per leg (engine and far-end sockets)",
        rss0,
        rss1,
        args.calls,
        (rss1.saturating_sub(rss0)) as f64 / args.calls.max(1) as f64
    );
    Ok(())
}
