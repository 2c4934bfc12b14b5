//! The machine's own limits, measured in the same run as a sweep, so every result can be
//! read as a fraction of what the hardware allows: loopback TCP bandwidth, sequential disk
//! write bandwidth and fdatasync latency.
//!
//! iperf3 and fio are used when installed (scripts/compare.sh installs them); the built-in
//! equivalents always run too, so a machine without them still gets figures.

use crate::histogram::Latency;
use serde::Serialize;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default, Serialize)]
pub struct Limits {
    /// Single-stream loopback TCP, MB/s (10^6 bytes).
    pub tcp_loopback_mb_s: f64,
    pub tcp_loopback_mb_s_builtin: f64,
    pub tcp_loopback_mb_s_iperf3: Option<f64>,
    /// Sequential buffered 1 MiB writes ending with an fdatasync, MB/s.
    pub disk_write_mb_s: f64,
    pub disk_write_mb_s_builtin: f64,
    pub disk_write_mb_s_fio: Option<f64>,
    /// Latency of appending 4 KiB then fdatasync, ms.
    pub fdatasync_ms_p50: f64,
    pub fdatasync_ms_p99: f64,
    pub fdatasync_ms_p50_builtin: f64,
    pub fdatasync_ms_p50_fio: Option<f64>,
    /// The directory the disk figures were measured in (the brokers' data directory).
    pub disk_dir: String,
}

/// Measures every limit; `seconds` bounds the TCP tests.
pub fn measure(dir: &Path, seconds: f64) -> Limits {
    let mut l = Limits {
        disk_dir: dir.display().to_string(),
        ..Limits::default()
    };
    l.tcp_loopback_mb_s_builtin = tcp_builtin(seconds, None).unwrap_or(0.0);
    l.tcp_loopback_mb_s_iperf3 = tcp_iperf3(seconds, None);
    l.tcp_loopback_mb_s = l
        .tcp_loopback_mb_s_iperf3
        .unwrap_or(l.tcp_loopback_mb_s_builtin);

    l.disk_write_mb_s_builtin = disk_write_builtin(dir, 256 << 20).unwrap_or(0.0);
    l.disk_write_mb_s_fio = fio(
        dir,
        &["--rw=write", "--bs=1M", "--size=512M", "--end_fsync=1"],
    )
    .and_then(|j| j["jobs"][0]["write"]["bw_bytes"].as_f64())
    .map(|b| b / 1e6);
    l.disk_write_mb_s = l.disk_write_mb_s_fio.unwrap_or(l.disk_write_mb_s_builtin);

    let sync = fdatasync_builtin(dir, 300).unwrap_or_default();
    l.fdatasync_ms_p50_builtin = sync.quantile_ms(0.5);
    l.fdatasync_ms_p99 = sync.quantile_ms(0.99);
    let fio_sync = fio(
        dir,
        &["--rw=write", "--bs=4k", "--size=2M", "--fdatasync=1"],
    );
    let fio_q = |q: &str| {
        fio_sync.as_ref().and_then(|j| {
            j["jobs"][0]["sync"]["lat_ns"]["percentile"][q]
                .as_f64()
                .map(|ns| ns / 1e6)
        })
    };
    l.fdatasync_ms_p50_fio = fio_q("50.000000");
    l.fdatasync_ms_p50 = l.fdatasync_ms_p50_fio.unwrap_or(l.fdatasync_ms_p50_builtin);
    if let Some(p99) = fio_q("99.000000") {
        l.fdatasync_ms_p99 = p99;
    }
    l
}

/// Loopback TCP bandwidth of one socket pair in this process, MB/s; the sender uses
/// `congestion` (TCP_CONGESTION) when given, else the system's default.
pub fn tcp_builtin(seconds: f64, congestion: Option<&str>) -> std::io::Result<f64> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<(u64, Duration)> {
        let (mut stream, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        let (mut total, start) = (0u64, Instant::now());
        loop {
            match stream.read(&mut buf)? {
                0 => return Ok((total, start.elapsed())),
                n => total += n as u64,
            }
        }
    });
    let mut stream = std::net::TcpStream::connect(addr)?;
    if let Some(algorithm) = congestion {
        set_congestion(&stream, algorithm)?;
    }
    let buf = vec![0x5au8; 1 << 20];
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        stream.write_all(&buf)?;
    }
    drop(stream);
    let (bytes, elapsed) = reader
        .join()
        .map_err(|_| std::io::Error::other("reader panicked"))??;
    Ok(bytes as f64 / 1e6 / elapsed.as_secs_f64())
}

/// Sets TCP_CONGESTION (the congestion control algorithm, by name) on one socket.
fn set_congestion(stream: &std::net::TcpStream, algorithm: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the life of `stream`, and the pointer and length
    // describe the bytes of `algorithm`.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            algorithm.as_ptr().cast(),
            algorithm.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Loopback TCP bandwidth by iperf3, MB/s, when it is installed; `congestion` is passed
/// to its sender (`-C`).
pub fn tcp_iperf3(seconds: f64, congestion: Option<&str>) -> Option<f64> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port()
        .to_string();
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-B", "127.0.0.1", "-p", &port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    let mut client = Command::new("iperf3");
    client
        .args(["-c", "127.0.0.1", "-p", &port, "-J", "-t"])
        .arg(format!("{}", seconds.ceil().max(1.0)));
    if let Some(algorithm) = congestion {
        client.args(["-C", algorithm]);
    }
    let out = client.stderr(Stdio::null()).output();
    let _ = server.kill();
    let _ = server.wait();
    let json: serde_json::Value = serde_json::from_slice(&out.ok()?.stdout).ok()?;
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|bps| bps / 8.0 / 1e6)
}

fn fio(dir: &Path, job: &[&str]) -> Option<serde_json::Value> {
    let out = Command::new("fio")
        .args(["--name=limits", "--ioengine=sync", "--output-format=json"])
        .arg(format!("--directory={}", dir.display()))
        .args(job)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let _ = std::fs::remove_file(dir.join("limits.0.0"));
    serde_json::from_slice(&out.stdout).ok()
}

fn disk_write_builtin(dir: &Path, bytes: usize) -> std::io::Result<f64> {
    let path = dir.join("limits-seq-write.tmp");
    let buf = vec![0xa5u8; 1 << 20];
    let start = Instant::now();
    let mut file = std::fs::File::create(&path)?;
    for _ in 0..bytes / buf.len() {
        file.write_all(&buf)?;
    }
    file.sync_data()?;
    let elapsed = start.elapsed();
    std::fs::remove_file(&path)?;
    Ok(bytes as f64 / 1e6 / elapsed.as_secs_f64())
}

fn fdatasync_builtin(dir: &Path, count: u64) -> std::io::Result<Latency> {
    let path = dir.join("limits-fdatasync.tmp");
    let file = std::fs::File::create(&path)?;
    let buf = vec![0x3cu8; 4096];
    let mut latency = Latency::new();
    for i in 0..count {
        let start = Instant::now();
        file.write_all_at(&buf, i * 4096)?;
        file.sync_data()?;
        latency.record(start.elapsed());
    }
    std::fs::remove_file(&path)?;
    Ok(latency)
}

#[cfg(test)]
mod tests {
    #[test]
    fn builtin_limits_are_positive() {
        let dir = std::env::temp_dir().join(format!("rb-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(super::tcp_builtin(0.2, None).unwrap() > 0.0);
        assert!(super::tcp_builtin(0.2, Some("reno")).unwrap() > 0.0);
        assert!(super::tcp_builtin(0.2, Some("no-such-algorithm")).is_err());
        assert!(super::disk_write_builtin(&dir, 8 << 20).unwrap() > 0.0);
        assert_eq!(super::fdatasync_builtin(&dir, 5).unwrap().len(), 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
