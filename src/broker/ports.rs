//! Start-up checks that a broker's listen addresses are its own.

use anyhow::{Context, bail};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// How long a listener found on our port may take to go away before start-up fails.
const PORT_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// The addresses this broker has claimed (`claim_address`), held while it runs.
#[derive(Default)]
pub(super) struct Claims {
    held: Vec<(SocketAddr, Option<UnixDatagram>)>,
}

impl Claims {
    /// Fails when something already listens on `addr`: the shards bind with SO_REUSEPORT,
    /// which would let a second broker share the port and take part of its clients.
    /// Checked by connecting (a plain bind would also fail on an ephemeral port a client
    /// connection holds). Two brokers started at the same instant would both pass that
    /// check (neither listens yet), so the address is first claimed, once per broker: an
    /// address this broker already claimed (two of its own keys naming it) is not claimed
    /// again, and port 0 (a port the kernel picks) is never claimed.
    pub(super) fn ensure_port_free(&mut self, addr: &str, key: &str) -> anyhow::Result<()> {
        let Some(mut target) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
            // A name that does not resolve shows at the real bind with its own message.
            return Ok(());
        };
        if target.port() == 0 || self.held.iter().any(|(a, _)| *a == target) {
            return Ok(());
        }
        let claim = claim_address(&target, key, addr)?;
        self.held.push((target, claim));
        if target.ip().is_unspecified() {
            target.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        // A broker killed a moment ago can still accept here: io_uring releases its
        // listening socket after the process is gone. A listener that stays for the whole
        // window is another live process.
        let deadline = std::time::Instant::now() + PORT_RELEASE_WAIT;
        while std::net::TcpStream::connect_timeout(&target, Duration::from_millis(300)).is_ok() {
            if std::time::Instant::now() >= deadline {
                bail!("{key} {addr} is already in use: another process listens there");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

/// Binds an abstract unix socket named after `target`: the bind either takes the name or
/// fails at once, so of two brokers starting on one address only one gets past here. The
/// kernel drops the name when its socket closes, at the latest when the process exits (a
/// SIGKILL included), so a restart finds it free; a name held for `PORT_RELEASE_WAIT` is
/// another live broker. Abstract names belong to the network namespace, as the TCP port
/// does. Where unix sockets are not allowed (a sandbox restricting address families) the
/// broker starts without the claim, with the connect check alone.
fn claim_address(
    target: &SocketAddr,
    key: &str,
    addr: &str,
) -> anyhow::Result<Option<UnixDatagram>> {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("ringbroker-listen-{target}");
    let claim = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .with_context(|| format!("cannot name the claim of {key} {addr}"))?;
    // A broker killed a moment ago may not have exited yet: the name is free once it has.
    let deadline = std::time::Instant::now() + PORT_RELEASE_WAIT;
    loop {
        match UnixDatagram::bind_addr(&claim) {
            Ok(socket) => return Ok(Some(socket)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if std::time::Instant::now() >= deadline {
                    bail!(
                        "{key} {addr} is already in use: another ringbroker is starting or runs there"
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                tracing::warn!(
                    "cannot claim {key} {addr} with a unix socket ({e}); only checking that \
                     nothing listens there"
                );
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port nobody listens on, from the kernel's ephemeral range.
    fn idle_address() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        addr.to_string()
    }

    #[test]
    fn an_address_is_claimed_once_per_broker_and_refused_to_another() {
        let addr = idle_address();
        let mut mine = Claims::default();
        mine.ensure_port_free(&addr, "listener A")
            .expect("first claim");
        // A second key of the same broker naming the address passes at once.
        mine.ensure_port_free(&addr, "metrics.listen")
            .expect("the broker's own claim");
        assert_eq!(mine.held.len(), 1);
        assert!(mine.held[0].1.is_some(), "claimed with a unix socket");
        // Another broker starting on it is refused.
        let err = Claims::default()
            .ensure_port_free(&addr, "listener B")
            .expect_err("a second broker on the address");
        assert!(err.to_string().contains("already in use"), "{err}");
        // Once the first lets go, the address is free again; port 0 is never claimed.
        drop(mine);
        let mut next = Claims::default();
        next.ensure_port_free(&addr, "listener A")
            .expect("claim after release");
        next.ensure_port_free("127.0.0.1:0", "listener C")
            .expect("port 0");
        assert_eq!(next.held.len(), 1);
    }
}
