//! Broker processes a sweep starts: a fresh ringbroker per setting, or the `--peer` command.

use anyhow::Context as _;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A broker process the sweep started; stopped with SIGTERM (then SIGKILL) when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        // The peer runs in its own process group (a shell and its children): signal all.
        let pgid = self.0.id() as i32;
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

pub fn spawn_in_group(mut command: Command) -> anyhow::Result<Process> {
    use std::os::unix::process::CommandExt as _;
    command.process_group(0);
    Ok(Process(command.spawn().context("starting broker")?))
}

pub fn wait_listening(addr: &str, process: &mut Process, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = process.0.try_wait() {
            anyhow::bail!("broker exited before listening: {status}");
        }
        anyhow::ensure!(Instant::now() < deadline, "broker not listening on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
