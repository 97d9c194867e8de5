//! The few Linux calls the media threads need that std does not wrap: epoll, timerfd, eventfd
//! and the monotonic clock. Each wrapper owns its descriptor and closes it on drop.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// CLOCK_MONOTONIC in nanoseconds (the clock timerfd uses, so deadlines compare directly).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall; the returned descriptor is checked and then owned.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is valid for the call; the kernel copies it.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    pub fn delete(&self, fd: RawFd) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as above; failure (already closed) is harmless.
        unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) };
    }

    /// Wait for events (blocking, `timeout_ms` -1 for none); returns how many were filled.
    pub fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        // SAFETY: the buffer is valid for `events.len()` entries.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                timeout_ms,
            )
        };
        match cvt(n) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// A monotonic timerfd armed at absolute nanosecond deadlines.
pub struct Timer {
    fd: OwnedFd,
}

impl Timer {
    pub fn new() -> io::Result<Timer> {
        // SAFETY: plain syscall, result checked, then owned.
        let fd = cvt(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })?;
        // SAFETY: fresh descriptor.
        Ok(Timer {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn arm_at(&self, deadline_ns: u64) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (deadline_ns % 1_000_000_000).max(1) as libc::c_long,
            },
        };
        // SAFETY: `spec` is valid; old value not requested.
        cvt(unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        })?;
        Ok(())
    }

    /// Consume the expiration count (so level-triggered epoll stops reporting it).
    pub fn ack(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reading 8 bytes into an 8-byte buffer; EAGAIN is fine.
        unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// An eventfd used to wake a media thread when a command is queued.
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    pub fn new() -> io::Result<Waker> {
        // SAFETY: plain syscall, result checked, then owned.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: fresh descriptor.
        Ok(Waker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writing 8 bytes from an 8-byte buffer.
        unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), 8) };
    }

    pub fn ack(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reading 8 bytes into an 8-byte buffer; EAGAIN is fine.
        unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Raises the soft limit on open files to the hard one and returns it (see
/// [`crate::limits::raise_open_files`], the one place that does it).
pub fn raise_open_files_limit() -> io::Result<u64> {
    Ok(crate::limits::raise_open_files().1)
}

/// Put the calling thread under SCHED_FIFO at `priority` (1-99).
pub fn set_realtime(priority: u8) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: libc::c_int::from(priority.clamp(1, 99)),
    };
    // SAFETY: `param` is valid for the call; pid 0 is the calling thread.
    cvt(unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) })?;
    Ok(())
}

/// Pin the calling thread to the `nth` CPU of those it may run on now.
pub fn pin_to_nth_cpu(nth: usize) -> io::Result<usize> {
    // SAFETY: cpu_set_t is plain data; the calls get valid pointers and its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        cvt(libc::sched_getaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &mut set,
        ))?;
        let allowed: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect();
        let cpu = *allowed
            .get(nth % allowed.len().max(1))
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        cvt(libc::sched_setaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &one,
        ))?;
        Ok(cpu)
    }
}

/// Packets per `recvmmsg`. One: a socket almost always holds a single 20 ms packet when its
/// readiness is served, asking for more costs a failed receive attempt per packet (measured:
/// the largest single cost after the send), and level-triggered epoll reports the socket again
/// while anything is left.
pub const RECV_BATCH: usize = 1;
const RECV_BUF: usize = 2048;

/// Buffers for one `recvmmsg` per readiness, with the sender's address and the kernel's
/// receive stamp.
pub struct RecvBatch {
    bufs: Box<[[u8; RECV_BUF]; RECV_BATCH]>,
    addrs: [libc::sockaddr_storage; RECV_BATCH],
    lens: [usize; RECV_BATCH],
    /// Ancillary data (the kernel's receive timestamp); u64 for cmsghdr alignment.
    ctrl: [[u64; CTRL_WORDS]; RECV_BATCH],
    /// Kernel receive time of each packet (CLOCK_REALTIME ns), when the socket gives it.
    stamps: [Option<u64>; RECV_BATCH],
}

const CTRL_WORDS: usize = 8;

/// Asks the kernel to stamp each datagram with its arrival time (SO_TIMESTAMPNS), so
/// interarrival jitter is measured at arrival, not when a batched receive gets to it.
pub fn enable_rx_timestamps(fd: RawFd) -> bool {
    let on: libc::c_int = 1;
    // SAFETY: a valid fd and a pointer to a c_int of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// CLOCK_REALTIME in ns: the clock of the kernel's receive stamps, for packets without one.
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        RecvBatch {
            bufs: Box::new([[0; RECV_BUF]; RECV_BATCH]),
            // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
            addrs: unsafe { std::mem::zeroed() },
            lens: [0; RECV_BATCH],
            ctrl: [[0; CTRL_WORDS]; RECV_BATCH],
            stamps: [None; RECV_BATCH],
        }
    }

    /// Receive up to `RECV_BATCH` packets without blocking; returns how many (0 when none or
    /// on error).
    pub fn recv(&mut self, fd: RawFd) -> usize {
        let mut iov: [libc::iovec; RECV_BATCH] = std::array::from_fn(|i| libc::iovec {
            iov_base: self.bufs[i].as_mut_ptr().cast(),
            iov_len: RECV_BUF,
        });
        // SAFETY: mmsghdr is plain data; zero is a valid starting value.
        let mut msgs: [libc::mmsghdr; RECV_BATCH] = unsafe { std::mem::zeroed() };
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_iov = &mut iov[i];
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            m.msg_hdr.msg_control = self.ctrl[i].as_mut_ptr().cast();
            m.msg_hdr.msg_controllen = CTRL_WORDS * 8;
        }
        // SAFETY: every pointer in `msgs` refers to live buffers of the stated sizes.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            return 0;
        }
        let n = n as usize;
        for (i, m) in msgs[..n].iter().enumerate() {
            self.lens[i] = m.msg_len as usize;
            self.stamps[i] = receive_stamp(&m.msg_hdr);
        }
        n
    }

    /// Kernel arrival time of packet `i` (CLOCK_REALTIME ns), if the socket stamps packets.
    pub fn arrival_ns(&self, i: usize) -> Option<u64> {
        self.stamps.get(i).copied().flatten()
    }

    /// Packet `i` of the last `recv` and where it came from.
    pub fn packet(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let src = sockaddr_to_std(&self.addrs[i])?;
        Some((&self.bufs[i][..self.lens[i].min(RECV_BUF)], src))
    }
}

/// The SCM_TIMESTAMPNS stamp of a received message, if present.
fn receive_stamp(hdr: &libc::msghdr) -> Option<u64> {
    // SAFETY: `hdr` was filled by recvmmsg; the CMSG macros walk its control buffer within
    // msg_controllen, and the data of an SCM_TIMESTAMPNS message is a timespec.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                return Some(
                    (ts.tv_sec as u64)
                        .wrapping_mul(1_000_000_000)
                        .wrapping_add(ts.tv_nsec as u64),
                );
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) fn sockaddr_to_std(a: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match a.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let v4: &libc::sockaddr_in = unsafe { &*(a as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let v6: &libc::sockaddr_in6 = unsafe { &*(a as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Dissolve a UDP socket's association (connect to AF_UNSPEC) so it receives from anyone.
pub fn disconnect_udp(sock: &std::net::UdpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: sockaddr is plain data; AF_UNSPEC with its size is the documented way.
    let mut sa: libc::sockaddr = unsafe { std::mem::zeroed() };
    sa.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: valid descriptor and address of the stated size.
    cvt(unsafe {
        libc::connect(
            sock.as_raw_fd(),
            &sa,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// The receive stamp is the kernel's arrival time, not the time the batch was read.
    /// Linux switches stamping on for the whole stack a moment after the first socket asks
    /// (a deferred static key), and stamps at read time until then: so the first attempts
    /// may see read-time stamps, but arrival stamps must come.
    #[test]
    fn receive_reports_kernel_arrival_time() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        assert!(enable_rx_timestamps(rx.as_raw_fd()));
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = RecvBatch::new();
        let mut waits = Vec::new();
        for _ in 0..40 {
            tx.send_to(b"one", rx.local_addr().unwrap()).unwrap();
            tx.send_to(b"two", rx.local_addr().unwrap()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(30));
            let read_at = realtime_ns();
            assert_eq!(batch.recv(rx.as_raw_fd()), 1);
            assert_eq!(
                batch.packet(0).map(|(p, src)| (p.to_vec(), src)),
                Some((b"one".to_vec(), tx.local_addr().unwrap()))
            );
            let first = batch.arrival_ns(0).expect("stamped");
            // The second packet waits for the next readiness, with its own stamp.
            assert_eq!(batch.recv(rx.as_raw_fd()), 1);
            assert_eq!(
                batch.packet(0).map(|(p, _)| p.to_vec()),
                Some(b"two".to_vec())
            );
            let second = batch.arrival_ns(0).expect("stamped");
            assert!(second >= first);
            assert_eq!(batch.recv(rx.as_raw_fd()), 0, "drained");
            let waited = read_at.saturating_sub(first);
            if waited >= 25_000_000 {
                return;
            }
            waits.push(waited);
        }
        panic!("stamps never taken at arrival: waits {waits:?} ns");
    }
}
