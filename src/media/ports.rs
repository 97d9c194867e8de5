//! The pool of RTP/RTCP port pairs of `[media] rtp_ports`.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use super::types::MediaError;

/// Even RTP ports of `[media] rtp_ports`, least recently used first.
pub(crate) struct PortPool {
    free: VecDeque<u16>,
}

impl PortPool {
    pub(crate) fn new(lo: u16, hi: u16) -> PortPool {
        let first = lo + (lo & 1);
        let free = (first..hi).step_by(2).collect();
        PortPool { free }
    }

    pub(crate) fn len(&self) -> usize {
        self.free.len()
    }

    /// Bind an RTP/RTCP pair from the pool, skipping ports another process holds.
    pub(crate) fn bind(&mut self, ip: IpAddr) -> Result<(u16, UdpSocket, UdpSocket), MediaError> {
        for _ in 0..self.free.len() {
            let Some(port) = self.free.pop_front() else {
                break;
            };
            let rtp = UdpSocket::bind(SocketAddr::new(ip, port));
            let rtcp = UdpSocket::bind(SocketAddr::new(ip, port + 1));
            match (rtp, rtcp) {
                (Ok(a), Ok(b)) => {
                    a.set_nonblocking(true)?;
                    b.set_nonblocking(true)?;
                    super::sys::enable_rx_timestamps(std::os::fd::AsRawFd::as_raw_fd(&a));
                    return Ok((port, a, b));
                }
                _ => self.free.push_back(port),
            }
        }
        Err(MediaError::NoPorts)
    }

    pub(crate) fn release(&mut self, port: u16) {
        self.free.push_back(port);
    }
}
