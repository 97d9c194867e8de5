//! Load tool for the media engine (in-process): N concurrent legs, each playing the greeting in a
//! loop while recording the far end with VAD and in-band DTMF detection on; the far end of each
//! leg sends 20 ms speech packets. Measured on the receiving side with kernel timestamps
//! (SO_TIMESTAMPNS): inter-arrival deviation from 20 ms (p50/p99/p99.9/max), loss both ways,
//! and the media threads' CPU time per packet handled (from /proc/self/task/*/stat).
//!
//! nice -n 10 cargo run --release --bin astreinte-mediaload -- --calls 1000 --seconds 20
//!
//! Over SIP (`--sip ADDR`): the tool starts its own SIP endpoint (127.0.0.1, a free port), places
//! N calls to `sip:611@ADDR` ramped at `--setup-rate` calls/s (200 by default) so call set-up
//! is over before the measurement starts, learns each call's engine RTP address from the SDP
//! answer, then streams and measures as above. Engine CPU and RSS are read from /proc of the
//! engine's PID (`--engine-pid PID`, or the process holding the UDP port of ADDR); far end ->
//! engine loss comes from the engine's own RTCP reports (each far end has RTCP on RTP port + 1,
//! `--local-ports`). The engine's config needs `[sip] rate_limit_per_source` raised for one
//! source placing N calls, and an `[media] rtp_ports` range of at least 2 x N ports:
//!
//! ```text
//! # /tmp/load.toml
//! [sip]
//! listen = "127.0.0.1:5090"
//! rate_limit_per_source = 100000
//! [media]
//! rtp_ports = "30000-33999"
//! recordings_dir = "/tmp/load-rec"
//! [store]
//! url = "sqlite:///tmp/load.db"
//!
//! cargo run --release -- serve --config /tmp/load.toml &
//! target/release/astreinte-mediaload --sip 127.0.0.1:5090 --calls 1000 --seconds 15
//! ```

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
    /// Keep epoll and a syscall per packet instead of io_uring (to compare).
    #[arg(long)]
    no_io_uring: bool,
    /// The far ends' send grid (µs): each leg sends on its own phase of the 20 ms cycle, and
    /// the legs sharing a phase send back to back. Independent phones are spread evenly; a
    /// coarse grid (1000) sends bursts of calls/20 packets every millisecond.
    #[arg(long, default_value_t = 1000)]
    send_grid_us: u64,
    /// The far ends' receiver harvests its sockets every this many µs instead of sleeping
    /// until a packet comes (0). A sleeping receiver is woken by the engine's send (on
    /// loopback the far end's receive runs inside it), which a phone on the network never
    /// costs the engine. Arrival times are the kernel's either way.
    #[arg(long, default_value_t = 1000)]
    recv_poll_us: u64,
    #[arg(long, default_value = "prompts")]
    prompts: String,
    #[arg(long, default_value = "40000-49999")]
    ports: String,
    /// Place the calls over SIP to `sip:611@ADDR` (an engine started with `astreinte serve`)
    /// instead of opening sessions in-process.
    #[arg(long, value_name = "ADDR")]
    sip: Option<String>,
    /// PID of the engine measured in `--sip` mode (found by its SIP listening port otherwise).
    #[arg(long)]
    engine_pid: Option<u32>,
    /// Calls set up per second in `--sip` mode.
    #[arg(long, default_value_t = 200)]
    setup_rate: u32,
    /// Local RTP ports of the far ends in `--sip` mode (even port RTP, port+1 RTCP).
    #[arg(long, default_value = "50000-59999")]
    local_ports: String,
}

/// `clock`'s time in ns.
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
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

/// `/proc/PID` (`None`: this process).
fn proc_dir(pid: Option<u32>) -> String {
    pid.map_or_else(|| "/proc/self".to_string(), |p| format!("/proc/{p}"))
}

/// utime + stime (clock ticks) of the threads of `pid` whose name starts with `prefix`.
fn thread_cpu_ticks(pid: Option<u32>, prefix: &str) -> u64 {
    let (u, s) = thread_cpu_split(pid, prefix);
    u + s
}

/// (utime, stime) in clock ticks of the threads of `pid` whose name starts with `prefix`.
fn thread_cpu_split(pid: Option<u32>, prefix: &str) -> (u64, u64) {
    let mut total = (0, 0);
    let Ok(tasks) = std::fs::read_dir(format!("{}/task", proc_dir(pid))) else {
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

fn rss_kib(pid: Option<u32>) -> u64 {
    let s = std::fs::read_to_string(format!("{}/status", proc_dir(pid))).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse().ok())
        .unwrap_or(0)
}

struct Leg {
    sock: UdpSocket,
    last_arrival: u64,
    last_seq: Option<u16>,
    received: u64,
    lost: u64,
}

/// The receive side's figures: deviation of inter-arrival from 20 ms, sorted `devs` in µs.
fn print_deviation(devs: &[u32]) {
    println!(
        "inter-arrival deviation from 20 ms (us, kernel timestamps, {} samples): p50 {} p99 {} p99.9 {} max {}",
        devs.len(),
        pct(devs, 0.5),
        pct(devs, 0.99),
        pct(devs, 0.999),
        devs.last().copied().unwrap_or(0)
    );
}

/// The media threads' CPU (clock ticks) split into user and system, and the writer threads'.
fn print_cpu_split(split: (u64, u64), rec: u64) {
    let hz = 100.0; // USER_HZ
    println!(
        "  media threads user {:.2} s, system (kernel UDP, io_uring/epoll, timers) {:.2} s; recording writer threads {:.2} s",
        split.0 as f64 / hz,
        split.1 as f64 / hz,
        rec as f64 / hz
    );
}

/// CPU time of the calling thread (ns).
fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// What the sockets alone cost on this host, measured the way the engine's cost is: CPU µs
/// per packet handled when one thread sends RTP-sized packets over loopback on as many
/// connected sockets as a load run has and receives them, with no media work (a send and a
/// receive count as two packets). The engine's figure reads as a ratio of it.
fn loopback_reference() -> Result<f64> {
    const PAIRS: usize = 1000;
    const BLOCKS: usize = 25;
    let mut pairs = Vec::with_capacity(PAIRS);
    for _ in 0..PAIRS {
        let tx = UdpSocket::bind("127.0.0.1:0")?;
        let rx = UdpSocket::bind("127.0.0.1:0")?;
        tx.connect(rx.local_addr()?)?;
        rx.set_nonblocking(true)?;
        pairs.push((tx, rx));
    }
    let pkt = [0x80u8; 172];
    let mut buf = [0u8; 512];
    let mut blocks = Vec::with_capacity(BLOCKS);
    for _ in 0..BLOCKS {
        let t0 = thread_cpu_ns();
        let mut handled = 0u64;
        for _ in 0..4 {
            for (tx, _) in &pairs {
                handled += u64::from(tx.send(&pkt).is_ok());
            }
            for (_, rx) in &pairs {
                handled += u64::from(rx.recv(&mut buf).is_ok());
            }
        }
        let spent = thread_cpu_ns().saturating_sub(t0);
        blocks.push(spent as f64 / 1000.0 / handled.max(1) as f64);
    }
    // The median block: a host stall in one block does not move it.
    blocks.sort_by(f64::total_cmp);
    Ok(blocks[BLOCKS / 2])
}

/// The engine's CPU per packet beside the host reference measured before the run.
fn print_reference(engine_us: f64, reference: f64) {
    println!(
        "host reference (one thread sending and receiving over 1,000 loopback socket pairs, no media work): {reference:.2} us per packet; engine / reference = {:.2}",
        engine_us / reference
    );
}

fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// What one measured run saw.
struct RunResult {
    devs: Vec<u32>,
    lats: Vec<u32>,
    /// Bridge latencies by quarter of the place in a send burst (first quarter sent first).
    lats_by_place: [Vec<u32>; 4],
    legs: Vec<Leg>,
    elapsed: f64,
    sent_in_window: u64,
    cpu: u64,
    split: (u64, u64),
    rec: u64,
    load_cpu: u64,
    proc_cpu: u64,
}

/// Streams speech from every far end to its engine address, receives the engine's streams and
/// measures over `args.seconds` after `args.warmup`; CPU is read from the threads of `pid`.
fn stream(
    args: &Args,
    mut legs: Vec<Leg>,
    targets: Vec<std::net::SocketAddr>,
    speech_u: Arc<Vec<u8>>,
    pid: Option<u32>,
) -> Result<RunResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let sent_total = Arc::new(AtomicU64::new(0));

    // Sender: each far end sends one packet every 20 ms, phases spread over the 20 ms cycle.
    let grid_ns = args.send_grid_us.clamp(10, 20_000) * 1000;
    let phases = (20_000_000 / grid_ns).max(1);
    let grid_ns = 20_000_000 / phases;
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
                // Wake on the grid, not up to 50 µs later (the default timer slack).
                // SAFETY: plain prctl on this thread.
                unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
                let n = send_socks.len();
                let start = monotonic_ns() + 10_000_000;
                let mut pkt = [0u8; 172];
                pkt[0] = 0x80;
                let frames = speech_u.len() / 160;
                let mut tick = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Sub-ticks of `grid_ns`: legs with i % phases == sub send now.
                    let sub = (tick % phases) as usize;
                    let round = tick / phases;
                    sleep_until(start + tick * grid_ns);
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
                        // Its place among the legs sending in the same instant.
                        let place = (i / phases as usize) as u16;
                        pkt[20..22].copy_from_slice(&place.to_be_bytes());
                        if send_socks[i].send_to(&pkt, targets[i]).is_ok() {
                            sent_total.fetch_add(1, Ordering::Relaxed);
                        }
                        i += phases as usize;
                    }
                    tick += 1;
                }
            })?
    };

    // Receiver: epoll over the far-end sockets (harvested on a timer, or sleeping in it with
    // `--recv-poll-us 0`), recvmsg with the kernel receive timestamp.
    let receiver = {
        let bridge = args.bridge;
        let poll_ns = args.recv_poll_us.min(20_000) * 1000;
        let per_burst = legs.len().div_ceil(phases as usize).max(1);
        let stop = stop.clone();
        let measuring = measuring.clone();
        std::thread::Builder::new().name("load-recv".into()).spawn(
            move || -> (Vec<u32>, Vec<u32>, [Vec<u32>; 4], Vec<Leg>) {
                let mut lats: Vec<u32> = Vec::with_capacity(if bridge { 4_000_000 } else { 0 });
                let mut by_place: [Vec<u32>; 4] = Default::default();
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
                let mut next_poll = monotonic_ns();
                let mut full = false;
                while !stop.load(Ordering::Relaxed) {
                    let timeout = if poll_ns == 0 {
                        100
                    } else {
                        if !full {
                            next_poll += poll_ns;
                            sleep_until(next_poll);
                        }
                        0
                    };
                    let n = unsafe {
                        libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, timeout)
                    };
                    full = n == events.len() as i32;
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
                                let lat = (kts.saturating_sub(sent) / 1000) as u32;
                                lats.push(lat);
                                let place = u16::from_be_bytes([buf[20], buf[21]]) as usize;
                                by_place[(place * 4 / per_burst).min(3)].push(lat);
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
                (devs, lats, by_place, legs)
            },
        )?
    };

    std::thread::sleep(Duration::from_secs(args.warmup));
    measuring.store(true, Ordering::Relaxed);
    let sent0 = sent_total.load(Ordering::Relaxed);
    let cpu0 = thread_cpu_ticks(pid, "media-");
    let proc0 = thread_cpu_ticks(pid, "");
    let split0 = thread_cpu_split(pid, "media-");
    let load_cpu0 = thread_cpu_ticks(None, "load-");
    let rec0 = thread_cpu_ticks(pid, "media-rec");
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(args.seconds));
    let cpu1 = thread_cpu_ticks(pid, "media-");
    let proc1 = thread_cpu_ticks(pid, "");
    let split1 = thread_cpu_split(pid, "media-");
    let rec1 = thread_cpu_ticks(pid, "media-rec");
    let load_cpu1 = thread_cpu_ticks(None, "load-");
    let elapsed = t0.elapsed().as_secs_f64();
    let sent_in_window = sent_total.load(Ordering::Relaxed) - sent0;
    measuring.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    let (devs, lats, lats_by_place, legs) = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    std::thread::sleep(Duration::from_millis(100));
    Ok(RunResult {
        devs,
        lats,
        lats_by_place,
        legs,
        elapsed,
        sent_in_window,
        cpu: cpu1 - cpu0,
        split: (split1.0 - split0.0, split1.1 - split0.1),
        rec: rec1 - rec0,
        load_cpu: load_cpu1 - load_cpu0,
        proc_cpu: proc1 - proc0,
    })
}

/// The speech the far ends send: the English greeting, PCMU, looped.
fn load_speech(prompts: &str) -> Result<Arc<Vec<u8>>> {
    let speech: Vec<i16> = hound::WavReader::open(Path::new(prompts).join("en/greeting.wav"))?
        .samples::<i16>()
        .collect::<Result<_, _>>()?;
    let mut speech_u = vec![0u8; speech.len() / 160 * 160];
    g711::encode(Codec::Pcmu, &speech[..speech_u.len()], &mut speech_u);
    Ok(Arc::new(speech_u))
}

/// Non-blocking, with kernel receive timestamps (SO_TIMESTAMPNS).
fn set_timestamps(sock: &UdpSocket) -> Result<()> {
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
    Ok(())
}

/// The process holding a UDP socket bound to `port` (from /proc/net/udp and /proc/*/fd).
fn find_pid_by_udp_port(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some(local) = f.get(1) else { continue };
            let Some((_, p)) = local.rsplit_once(':') else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() == Some(port) {
                if let Some(inode) = f.get(9) {
                    inodes.push(format!("socket:[{inode}]"));
                }
            }
        }
    }
    let me = std::process::id();
    for d in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = d.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(d.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| link.as_os_str() == i.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// Cumulative loss (24-bit signed) in the first report block of the last SR/RR the engine sent to
/// this RTCP socket, if any.
fn last_reported_loss(sock: &UdpSocket) -> Option<i64> {
    let mut buf = [0u8; 1500];
    let mut last = None;
    while let Ok(n) = sock.recv(&mut buf) {
        let r = astreinte::media::rtcp::parse(&buf[..n]);
        if let Some(b) = r.block {
            last = Some(b.cumulative_lost as i64);
        }
    }
    last
}

/// `--sip ADDR`: N calls placed over SIP to a running engine, ramped at `--setup-rate`.
fn run_sip(args: Args) -> Result<()> {
    use astreinte::sip::{transport, CallRequest, LegEvent, SipConfig};
    let addr = args.sip.clone().unwrap_or_default();
    let engine_sip: std::net::SocketAddr = addr
        .parse()
        .with_context(|| format!("--sip {addr}: want IP:PORT"))?;
    let speech_u = load_speech(&args.prompts)?;
    let (pid, how) = match args.engine_pid {
        Some(p) => (p, "--engine-pid"),
        None => (
            find_pid_by_udp_port(engine_sip.port()).with_context(|| {
                format!(
                    "no process listens on UDP port {}; pass --engine-pid",
                    engine_sip.port()
                )
            })?,
            "found by its SIP port",
        ),
    };
    println!("engine PID {pid} ({how}); SIP {engine_sip}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("load-sip")
        .enable_all()
        .build()?;

    // Far-end sockets: RTP on an even port, RTCP on the port above (the engine's reports).
    let (lo, hi) = args
        .local_ports
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)))
        .context("--local-ports: want LOW-HIGH")?;
    let mut socks = Vec::with_capacity(args.calls);
    let mut port = lo + (lo & 1);
    while socks.len() < args.calls {
        if port >= hi {
            bail!(
                "--local-ports {} holds fewer than {} free pairs",
                args.local_ports,
                args.calls
            );
        }
        if let (Ok(r), Ok(c)) = (
            UdpSocket::bind(("127.0.0.1", port)),
            UdpSocket::bind(("127.0.0.1", port + 1)),
        ) {
            set_timestamps(&r)?;
            c.set_nonblocking(true)?;
            socks.push((r, c));
        }
        port += 2;
    }

    let reference = loopback_reference()?;
    let rss0 = rss_kib(Some(pid));
    let (sip, _incoming, sip_task) = rt.block_on(async {
        let cfg = SipConfig {
            listen: "127.0.0.1:0".into(),
            rate_limit_per_source: 1_000_000,
            ..SipConfig::default()
        };
        transport::start(&cfg).await
    })?;
    let t_setup = Instant::now();
    let placed = rt.block_on(async {
        let mut tick =
            tokio::time::interval(Duration::from_secs_f64(1.0 / args.setup_rate.max(1) as f64));
        let mut tasks = Vec::with_capacity(args.calls);
        for (i, (r, _)) in socks.iter().enumerate() {
            tick.tick().await;
            let sip = sip.clone();
            let req = CallRequest {
                target: format!("sip:611@{engine_sip}"),
                proxy: None,
                from: format!("sip:load{i}@{}", sip.local_addr()),
                credentials: None,
                local_rtp: r.local_addr()?,
            };
            tasks.push(tokio::spawn(async move {
                let (leg, mut events) = sip.place_call(req).await?;
                let answered = tokio::time::timeout(Duration::from_secs(15), async {
                    while let Some(ev) = events.recv().await {
                        match ev {
                            LegEvent::Answered { media } => return media.map(|m| m.remote_rtp),
                            LegEvent::Ended { .. } => return None,
                            _ => {}
                        }
                    }
                    None
                })
                .await
                .ok()
                .flatten();
                anyhow::Ok((leg, events, answered))
            }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await??);
        }
        anyhow::Ok(out)
    })?;
    let setup_s = t_setup.elapsed().as_secs_f64();
    let failed = placed.iter().filter(|p| p.2.is_none()).count();
    if failed > 0 {
        bail!(
            "{failed} of {} calls were not answered with media",
            args.calls
        );
    }
    println!(
        "{} calls answered over SIP in {:.1} s ({:.0} calls/s)",
        args.calls,
        setup_s,
        args.calls as f64 / setup_s
    );
    let mut legs = Vec::with_capacity(args.calls);
    let mut rtcp = Vec::with_capacity(args.calls);
    let mut targets = Vec::with_capacity(args.calls);
    let mut handles = Vec::with_capacity(args.calls);
    for ((r, c), (leg, events, remote)) in socks.into_iter().zip(placed) {
        let Some(remote) = remote else {
            bail!("a call was answered without an RTP address");
        };
        targets.push(remote);
        legs.push(Leg {
            sock: r,
            last_arrival: 0,
            last_seq: None,
            received: 0,
            lost: 0,
        });
        rtcp.push(c);
        handles.push((leg, events));
    }
    std::thread::sleep(Duration::from_millis(500));

    let RunResult {
        mut devs,
        legs,
        elapsed,
        sent_in_window,
        cpu,
        split,
        rec,
        load_cpu,
        proc_cpu,
        ..
    } = stream(&args, legs, targets, speech_u, Some(pid))?;
    // After the run, calls still up: every buffer the engine cycles through has been touched.
    let rss1 = rss_kib(Some(pid));

    // The engine's view of our streams: the last RTCP report of each call (sent every 5 s).
    let reports: Vec<i64> = rtcp.iter().filter_map(last_reported_loss).collect();
    let engine_lost: i64 = reports.iter().sum();
    // Calls the engine ended on its own during the run.
    let mut ended_early = 0;
    for (_, events) in handles.iter_mut() {
        while let Ok(ev) = events.try_recv() {
            if matches!(ev, LegEvent::Ended { .. }) {
                ended_early += 1;
            }
        }
    }
    drop(handles); // hangs every call up (BYE)
    rt.block_on(async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        sip.shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(3), sip_task).await;
    });

    devs.sort_unstable();
    let recv_total: u64 = legs.iter().map(|l| l.received).sum();
    let lost_total: u64 = legs.iter().map(|l| l.lost).sum();
    let hz = 100.0;
    let handled = recv_total + sent_in_window;
    println!(
        "calls {} over SIP  measured {:.1} s  ended by the engine during the run: {}",
        args.calls, elapsed, ended_early
    );
    println!(
        "engine -> far end: {} packets, lost {} ({:.4} %)",
        recv_total,
        lost_total,
        lost_total as f64 * 100.0 / (recv_total + lost_total).max(1) as f64
    );
    println!(
        "far end -> engine: {} sent in the window; engine RTCP reports cumulative lost {} ({} of {} calls reported)",
        sent_in_window,
        engine_lost,
        reports.len(),
        args.calls
    );
    print_deviation(&devs);
    println!(
        "engine media threads CPU {:.2} s = {:.2} us per packet handled ({} sent + received); whole engine process {:.2} s = {:.2} us/pkt; load tool CPU {:.2} s",
        cpu as f64 / hz,
        cpu as f64 / hz * 1e6 / handled.max(1) as f64,
        handled,
        proc_cpu as f64 / hz,
        proc_cpu as f64 / hz * 1e6 / handled.max(1) as f64,
        load_cpu as f64 / hz
    );
    print_cpu_split(split, rec);
    print_reference(cpu as f64 / hz * 1e6 / handled.max(1) as f64, reference);
    println!(
        "engine RSS: {} KiB before the calls, {} KiB after the run with {} calls up: {:.1} KiB per call",
        rss0,
        rss1,
        args.calls,
        rss1.saturating_sub(rss0) as f64 / args.calls.max(1) as f64
    );
    Ok(())
}

/// The in-process run's recordings, removed when the run ends (also when it fails).
struct RecordingsDir(std::path::PathBuf);

impl RecordingsDir {
    fn create() -> Result<RecordingsDir> {
        let dir = std::env::temp_dir().join(format!("astreinte-mediaload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(RecordingsDir(dir))
    }
}

impl Drop for RecordingsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let _ = astreinte::media::raise_open_files_limit();
    if !Path::new(&args.prompts).join("en/greeting.wav").exists() {
        bail!(
            "no prompts at {} (run from the repository root or pass --prompts)",
            args.prompts
        );
    }
    if args.sip.is_some() {
        return run_sip(args);
    }
    let reference = loopback_reference()?;
    let rec_dir = RecordingsDir::create()?;
    let cfg = MediaConfig {
        rtp_ports: args.ports.clone(),
        prompts_dir: args.prompts.clone(),
        threads: args.threads,
        realtime_priority: args.rt_prio,
        pin_threads: args.pin,
        io_uring: if args.no_io_uring {
            astreinte::media::IoUringMode::Off
        } else {
            astreinte::media::IoUringMode::WithRealtime
        },
        ..MediaConfig::default()
    };
    let rss0 = rss_kib(None);
    let engine = MediaEngine::start(&cfg, "127.0.0.1".parse()?)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let speech_u = load_speech(&args.prompts)?;

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
        set_timestamps(&sock)?;
        s.apply(NegotiatedMedia {
            remote_rtp: sock.local_addr()?,
            codec: Codec::Pcmu,
            payload_type: 0,
            telephone_event_pt: Some(101),
            direction: MediaDirection::SendRecv,
            ptime_ms: 20,
            signalling_peer: None,
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
                rec_dir.0.join(format!("{i}.wav")),
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
    let rss1 = rss_kib(None);

    let RunResult {
        mut devs,
        mut lats,
        mut lats_by_place,
        legs,
        elapsed,
        sent_in_window,
        cpu,
        split,
        rec,
        load_cpu,
        ..
    } = stream(&args, legs, targets, speech_u, None)?;

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
    drop(rec_dir);

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
        // Far ends that send in the same instant queue behind each other in the engine: a
        // stall there delays the last of a burst most.
        let quarters: Vec<String> = lats_by_place
            .iter_mut()
            .map(|v| {
                v.sort_unstable();
                format!("{}/{}", pct(v, 0.5), pct(v, 0.99))
            })
            .collect();
        println!(
            "  by place in a send burst, first to last quarter (p50/p99 us): {}",
            quarters.join("  ")
        );
    }
    let recv_total: u64 = legs.iter().map(|l| l.received).sum();
    let lost_total: u64 = legs.iter().map(|l| l.lost).sum();
    let hz = 100.0; // USER_HZ
    let media_cpu_s = cpu as f64 / hz;
    let load_cpu_s = load_cpu as f64 / hz;
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
    print_deviation(&devs);
    println!(
        "media CPU {:.2} s over {:.1} s = {:.2} us per packet handled ({} sent + received); load tool CPU {:.2} s",
        media_cpu_s,
        elapsed,
        media_cpu_s * 1e6 / handled.max(1) as f64,
        handled,
        load_cpu_s
    );
    print_cpu_split(split, rec);
    print_reference(media_cpu_s * 1e6 / handled.max(1) as f64, reference);
    println!(
        "RSS: {} KiB before, {} KiB with {} legs open: {:.1} KiB per leg (engine and far-end sockets)",
        rss0,
        rss1,
        args.calls,
        (rss1.saturating_sub(rss0)) as f64 / args.calls.max(1) as f64
    );
    Ok(())
}
