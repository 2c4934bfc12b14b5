//! The few socket options the broker sets on client connections.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

fn setsockopt_raw(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &[u8],
) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live byte slice.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    setsockopt_raw(fd, level, name, &v.to_ne_bytes())
}

/// O_NONBLOCK on the open file (so also on every `dup` of the descriptor).
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller owns; no pointers are passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// TCP_CORK: while set, only full segments leave; clearing it sends the rest at once.
pub fn set_cork(fd: RawFd, on: bool) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_CORK, on.into())
}

/// TCP_CONGESTION: the congestion control algorithm of one socket, by name.
pub fn set_congestion(fd: RawFd, algorithm: &str) -> io::Result<()> {
    setsockopt_raw(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_CONGESTION,
        algorithm.as_bytes(),
    )
}

/// Checks that `algorithm` can be set on this machine, on a throwaway TCP socket.
pub fn probe_congestion(algorithm: &str) -> io::Result<()> {
    let sock = std::net::TcpListener::bind("127.0.0.1:0")?;
    set_congestion(sock.as_raw_fd(), algorithm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reno_is_always_available_and_nonsense_is_refused() {
        // reno is built into every Linux kernel.
        probe_congestion("reno").expect("reno");
        assert!(probe_congestion("no-such-algorithm").is_err());
    }
}
