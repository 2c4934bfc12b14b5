//! Shared harness for the integration tests: start/stop/restart a real `ringbroker` process
//! on a free port with an on-disk data directory, and a small raw Kafka client for
//! hand-crafted requests.
//!
//! Every test binary includes this module, and each uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

/// How long the harness waits for a broker to start accepting or to exit.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Socket read timeout of the raw client: a broker that never answers fails the test
/// instead of hanging it.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

static HEAVY: Mutex<()> = Mutex::new(());

/// Serialises the heavy tests of one test binary (cargo runs a binary's tests on several
/// threads; a 2-core machine should not run several 100k-message brokers at once).
pub fn heavy_lock() -> MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The broker binary: `RINGBROKER_BIN` if set (e.g. a release build), else the one cargo
/// built for these tests.
pub fn broker_bin() -> PathBuf {
    std::env::var_os("RINGBROKER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ringbroker")))
}

/// Every port this test process has handed out. Tests of one binary run in parallel, and
/// the kernel may give a port just released by one test's pick to another's: two brokers
/// on one port would both listen (SO_REUSEPORT), and each test would talk to either.
static HANDED_OUT: Mutex<std::collections::BTreeSet<u16>> =
    Mutex::new(std::collections::BTreeSet::new());

/// A listener on an ephemeral port of 127.0.0.1 that no other test of this process was
/// given, recorded as handed out.
pub fn bind_unclaimed() -> TcpListener {
    // Listeners on ports already handed out stay open until a new one is found, so the
    // kernel cannot offer them again.
    let mut refused = Vec::new();
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = l.local_addr().expect("local addr").port();
        if HANDED_OUT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return l;
        }
        refused.push(l);
    }
}

/// Picks a port on 127.0.0.1 that nothing listens on right now and that no other test of
/// this process was given.
pub fn free_port() -> u16 {
    bind_unclaimed().local_addr().expect("local addr").port()
}

/// A temporary directory on a real file system (the target dir, never tmpfs): O_DIRECT and
/// fdatasync must be exercised for real.
pub fn disk_tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create a temp dir in the target dir")
}

/// A running (or stopped) broker process and its data directory. Dropping it kills the
/// process (SIGKILL) and removes the data directory.
pub struct Broker {
    pub port: u16,
    extra: Vec<String>,
    /// Extra environment of the broker process.
    env: Vec<(String, String)>,
    /// RLIMIT_AS of the broker process (as `prlimit --as` sets it), if any.
    address_space_limit: Option<u64>,
    data: tempfile::TempDir,
    /// The data dir when it is not `data` (e.g. a power-cut filesystem's mount point).
    data_dir: Option<PathBuf>,
    log_path: PathBuf,
    child: Option<Child>,
    starts: u32,
    /// Names the broker in the log tail printed on failure (e.g. "node 2" of a cluster).
    label: String,
    /// Whether `--listen 127.0.0.1:PORT` is passed (not when `listeners` is configured).
    listen_flag: bool,
}

impl Broker {
    /// Starts a broker with `--shards 2` and the given `--set KEY=VALUE` pairs.
    pub fn start(sets: &[&str]) -> Broker {
        let mut extra = vec!["--shards".to_string(), "2".to_string()];
        for s in sets {
            extra.push("--set".to_string());
            extra.push(s.to_string());
        }
        Broker::start_with_args(extra)
    }

    /// Starts a broker with arbitrary extra CLI arguments (after `--listen` and `--data-dir`).
    pub fn start_with_args(extra: Vec<String>) -> Broker {
        Broker::start_with_options(extra, Vec::new(), None)
    }

    /// Starts a broker with extra CLI arguments, extra environment, and an address-space
    /// limit (RLIMIT_AS, as hosts with strict overcommit or `prlimit --as` impose).
    pub fn start_with_options(
        extra: Vec<String>,
        env: Vec<(String, String)>,
        address_space_limit: Option<u64>,
    ) -> Broker {
        let mut b = Broker::unstarted(free_port(), extra, env, address_space_limit);
        b.spawn();
        b
    }

    fn unstarted(
        port: u16,
        extra: Vec<String>,
        env: Vec<(String, String)>,
        address_space_limit: Option<u64>,
    ) -> Broker {
        let data = disk_tempdir("rb-data-");
        let log_path = data.path().with_extension("stderr.log");
        Broker {
            port,
            extra,
            env,
            address_space_limit,
            data,
            data_dir: None,
            log_path,
            child: None,
            starts: 0,
            label: String::new(),
            listen_flag: true,
        }
    }

    /// Starts a broker process on `port` without waiting for it to answer: the brokers of a
    /// cluster start together (one may wait for the others before it serves); call
    /// [`Broker::wait_ready`] on each afterwards.
    pub fn launch(port: u16, extra: Vec<String>, label: &str) -> Broker {
        let mut b = Broker::unstarted(port, extra, Vec::new(), None);
        b.label = label.to_string();
        b.spawn_process();
        b
    }

    /// As [`Broker::launch`], for a broker whose `extra` settings give its `listeners`
    /// (no `--listen`); `port` is the listener the harness waits on.
    pub fn launch_listeners(port: u16, extra: Vec<String>, label: &str) -> Broker {
        let mut b = Broker::unstarted(port, extra, Vec::new(), None);
        b.label = label.to_string();
        b.listen_flag = false;
        b.spawn_process();
        b
    }

    /// Starts a stopped broker again without waiting for it to answer (see `launch`).
    pub fn launch_again(&mut self) {
        self.spawn_process();
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// "broker" or, for a labelled one, e.g. "broker node 2".
    pub fn name(&self) -> String {
        if self.label.is_empty() {
            "broker".to_string()
        } else {
            format!("broker {}", self.label)
        }
    }

    /// The running broker's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.as_deref().unwrap_or(self.data.path())
    }

    /// Starts a broker (`--shards 2`, the given `--set KEY=VALUE` pairs) on `data_dir`, a
    /// directory the caller owns.
    pub fn start_on(data_dir: &Path, sets: &[&str]) -> Broker {
        let mut extra = vec!["--shards".to_string(), "2".to_string()];
        for s in sets {
            extra.push("--set".to_string());
            extra.push(s.to_string());
        }
        let mut b = Broker::unstarted(free_port(), extra, Vec::new(), None);
        b.data_dir = Some(data_dir.to_path_buf());
        b.spawn();
        b
    }

    /// Starts a broker (`--shards 2` and `extra`) on `data_dir`, a directory the caller owns,
    /// without `--listen`: `extra` configures `listeners`, one of which must be a PLAINTEXT
    /// or SASL_PLAINTEXT listener on 127.0.0.1:`port` (it is probed with ApiVersions).
    pub fn start_with_listeners(data_dir: &Path, port: u16, extra: Vec<String>) -> Broker {
        let mut args = vec!["--shards".to_string(), "2".to_string()];
        args.extend(extra);
        let mut b = Broker::unstarted(port, args, Vec::new(), None);
        b.data_dir = Some(data_dir.to_path_buf());
        b.listen_flag = false;
        b.spawn();
        b
    }

    /// Starts a broker on `data_dir` with its own `listeners` (no `--listen`) without
    /// waiting for it, as [`Broker::launch`] does; `port` is the listener the harness
    /// waits on.
    pub fn launch_with_listeners(
        data_dir: &Path,
        port: u16,
        extra: Vec<String>,
        label: &str,
    ) -> Broker {
        let mut b = Broker::unstarted(port, extra, Vec::new(), None);
        b.data_dir = Some(data_dir.to_path_buf());
        b.listen_flag = false;
        b.label = label.to_string();
        b.spawn_process();
        b
    }

    /// The broker's stderr so far (all runs on this data dir).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn spawn(&mut self) {
        self.spawn_process();
        self.wait_ready();
    }

    fn spawn_process(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open broker log");
        writeln!(log, "===== harness: start #{} =====", self.starts).expect("write log");
        let err = log.try_clone().expect("clone log fd");
        let mut cmd = Command::new(broker_bin());
        let as_limit = self.address_space_limit;
        // If the test process dies without running Drop (killed by a timeout), take the
        // broker with it. The signal fires when the spawning thread exits; a Broker is only
        // ever used from the thread that created it.
        // SAFETY: prctl and setrlimit are async-signal-safe and touch only the child.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(bytes) = as_limit {
                    let lim = libc::rlimit {
                        rlim_cur: bytes,
                        rlim_max: bytes,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }

        cmd.arg("serve");
        if self.listen_flag {
            cmd.arg("--listen").arg(self.bootstrap());
        }
        let child = cmd
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            // The test's own environment comes last, so it wins.
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn ringbroker");
        self.child = Some(child);
    }

    /// Waits until the broker answers an ApiVersions request on its port.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "{} exited during start-up with {status}; its log:\n{}",
                    self.name(),
                    self.log()
                );
            }
            if let Ok(mut c) = RawClient::try_connect(self.addr()) {
                let probe = c.request(0, &ApiVersionsRequest::default());
                if matches!(probe, Ok((_, ref resp)) if resp.error_code == 0) {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not answer ApiVersions on {} within {:?}; its log:\n{}",
                    self.name(),
                    self.addr(),
                    START_TIMEOUT,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The broker's resident memory (VmRSS of /proc/PID/status), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.pid().expect("broker running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS in /proc/PID/status")
            * 1024
    }

    /// How the broker process ended, if it did (without waiting).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten();
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Is the broker process still running?
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// The open files of the broker process inside its data dir whose path ends with
    /// `suffix`, with their open(2) flags (from /proc/PID/fdinfo).
    pub fn open_files(&self, suffix: &str) -> Vec<(PathBuf, u32)> {
        let Some(c) = &self.child else {
            return Vec::new();
        };
        let fd_dir = PathBuf::from(format!("/proc/{}/fd", c.id()));
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&fd_dir)
            .expect("read /proc/PID/fd")
            .flatten()
        {
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            if !target.starts_with(self.data_dir()) || !target.to_string_lossy().ends_with(suffix) {
                continue;
            }
            let info = format!(
                "/proc/{}/fdinfo/{}",
                c.id(),
                entry.file_name().to_string_lossy()
            );
            let Ok(info) = std::fs::read_to_string(info) else {
                continue;
            };
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .expect("flags in fdinfo");
            out.push((target, flags));
        }
        out
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as libc::pid_t, sig);
            }
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Graceful stop: SIGTERM, then wait for the process to exit successfully.
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        match self.wait_exit(STOP_TIMEOUT) {
            Some(st) => assert!(
                st.success(),
                "{} exited with {st} after SIGTERM; its log:\n{}",
                self.name(),
                self.log()
            ),
            None => {
                self.kill();
                panic!(
                    "{} did not exit within {STOP_TIMEOUT:?} of SIGTERM; its log:\n{}",
                    self.name(),
                    self.log()
                );
            }
        }
    }

    /// Hard stop: SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again on the same data dir and port.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    /// The environment of the broker's next start.
    pub fn set_env(&mut self, env: Vec<(String, String)>) {
        self.env = env;
    }

    /// Starts a stopped broker again (after `stop` or `kill`).
    pub fn start_again(&mut self) {
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            // RINGBROKER_TEST_LOG_TAIL=N prints more (or fewer) lines.
            let keep = std::env::var("RINGBROKER_TEST_LOG_TAIL")
                .ok()
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(80);
            let tail: String = {
                let lines: Vec<&str> = log.lines().collect();
                let from = lines.len().saturating_sub(keep);
                lines[from..].join("\n")
            };
            eprintln!(
                "----- {} log tail ({}) -----\n{tail}\n-----",
                self.name(),
                self.log_path.display()
            );
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Raw client
// ------------------------------------------------------------------------------------------

/// A blocking Kafka client that sends whatever the test builds, one frame at a time.
pub struct RawClient {
    pub stream: TcpStream,
    next_correlation_id: i32,
    versions: Option<BTreeMap<i16, (i16, i16)>>,
}

/// What became of a connection the broker was expected to close.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    Frame(Vec<u8>),
    Closed,
    TimedOut,
}

impl RawClient {
    pub fn try_connect(addr: SocketAddr) -> std::io::Result<RawClient> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(RawClient {
            stream,
            next_correlation_id: 1,
            versions: None,
        })
    }

    pub fn connect(addr: SocketAddr) -> RawClient {
        RawClient::try_connect(addr).expect("connect to broker")
    }

    pub fn next_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id += 1;
        id
    }

    /// Writes `payload` with its 4-byte length prefix.
    pub fn send_frame(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(payload.len() + 4);
        buf.extend_from_slice(&(payload.len() as i32).to_be_bytes());
        buf.extend_from_slice(payload);
        self.stream.write_all(&buf)
    }

    /// Writes raw bytes, no framing added.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Encodes a request header and hand-built body bytes into one frame payload.
    pub fn encode_raw(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        let header_version = ApiKey::try_from(api_key)
            .map(|k| k.request_header_version(version))
            .unwrap_or(1);
        RequestHeader::default()
            .with_request_api_key(api_key)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("ringbroker-tests")))
            .encode(&mut buf, header_version)
            .expect("encode request header");
        buf.put_slice(body);
        buf.to_vec()
    }

    /// Sends a request with a hand-built body; returns its correlation id.
    pub fn send_raw(&mut self, api_key: i16, version: i16, body: &[u8]) -> i32 {
        let id = self.next_correlation_id();
        let frame = RawClient::encode_raw(api_key, version, id, body);
        self.send_frame(&frame).expect("send request");
        id
    }

    /// Sends a typed request encoded at `version`; returns its correlation id.
    pub fn send<R: Request>(&mut self, version: i16, req: &R) -> i32 {
        self.try_send(version, req).expect("send request")
    }

    /// As [`Self::send`], with a failed write returned instead of failing the test.
    pub fn try_send<R: Request>(&mut self, version: i16, req: &R) -> std::io::Result<i32> {
        let mut body = BytesMut::new();
        req.encode(&mut body, version)
            .expect("encode request body at this version");
        let id = self.next_correlation_id();
        self.send_frame(&RawClient::encode_raw(R::KEY, version, id, &body))?;
        Ok(id)
    }

    /// Reads one response frame (without its length prefix).
    pub fn read_frame(&mut self) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        if !(0..=256 * 1024 * 1024).contains(&len) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("response frame length {len}"),
            ));
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Reads the next frame, telling a closed connection apart from a silent one.
    pub fn read_outcome(&mut self) -> ReadOutcome {
        match self.read_frame() {
            Ok(f) => ReadOutcome::Frame(f),
            Err(e) => match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    ReadOutcome::TimedOut
                }
                _ => ReadOutcome::Closed,
            },
        }
    }

    /// Asserts that the broker closes this connection (EOF or reset) rather than answering
    /// or leaving it hanging.
    pub fn expect_closed(&mut self, what: &str) {
        match self.read_outcome() {
            ReadOutcome::Closed => {}
            ReadOutcome::TimedOut => panic!(
                "{what}: the broker neither answered nor closed the connection within {READ_TIMEOUT:?}"
            ),
            ReadOutcome::Frame(f) => panic!(
                "{what}: expected the connection to be closed, got a {}-byte response",
                f.len()
            ),
        }
    }

    /// Reads a response frame, checks its correlation id and decodes it as `R::Response`.
    pub fn recv<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> anyhow::Result<(ResponseHeader, R::Response)> {
        let frame = self.read_frame()?;
        let mut buf = Bytes::from(frame);
        let hv = ApiKey::try_from(R::KEY)
            .map_err(|_| anyhow::anyhow!("unknown api key"))?
            .response_header_version(version);
        let header = ResponseHeader::decode(&mut buf, hv)?;
        anyhow::ensure!(
            header.correlation_id == correlation_id,
            "correlation id {} in response, expected {correlation_id}",
            header.correlation_id
        );
        let resp = R::Response::decode(&mut buf, version)?;
        anyhow::ensure!(
            !buf.has_remaining(),
            "{} bytes left over after decoding the response",
            buf.remaining()
        );
        Ok((header, resp))
    }

    /// Sends `req` at `version` and decodes the answer.
    pub fn request<R: Request>(
        &mut self,
        version: i16,
        req: &R,
    ) -> anyhow::Result<(ResponseHeader, R::Response)> {
        // A connection reset while sending is an error to return, as one while reading
        // (wait_ready retries on both: a broker killed a moment ago may still accept).
        let id = self.try_send(version, req)?;
        self.recv::<R>(version, id)
    }

    /// Like `request`, returning just the response body and failing the test on error.
    pub fn call<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        match self.request(version, req) {
            Ok((_, r)) => r,
            Err(e) => panic!("request api_key={} v{version} failed: {e:#}", R::KEY),
        }
    }

    /// The broker's advertised version ranges (ApiVersions v3, cached).
    pub fn versions(&mut self) -> BTreeMap<i16, (i16, i16)> {
        if let Some(v) = &self.versions {
            return v.clone();
        }
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("ringbroker-tests"))
            .with_client_software_version(StrBytes::from_static_str("0.1"));
        let resp: ApiVersionsResponse = self.call(3, &req);
        assert_eq!(resp.error_code, 0, "ApiVersions v3 error");
        let map: BTreeMap<i16, (i16, i16)> = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        self.versions = Some(map.clone());
        map
    }

    /// The highest version of `R` that both the broker and this test support, capped at
    /// `cap` (versions past the cap would need topic ids instead of names).
    pub fn pick_version<R: Request>(&mut self, cap: i16) -> i16 {
        let (min, max) = *self
            .versions()
            .get(&R::KEY)
            .unwrap_or_else(|| panic!("broker does not advertise api key {}", R::KEY));
        let v = max.min(cap).min(R::VERSIONS.max);
        assert!(
            v >= min && v >= R::VERSIONS.min,
            "no common version for api key {} (broker {min}..={max}, cap {cap})",
            R::KEY
        );
        v
    }
}

// ------------------------------------------------------------------------------------------
// Request builders and helpers shared by the raw tests
// ------------------------------------------------------------------------------------------

pub mod kafka {
    use super::RawClient;
    use bytes::Bytes;
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{
        BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse,
        ListOffsetsRequest, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
        TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{Record, RecordBatchDecoder};

    pub const NONE: i16 = 0;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_REQUEST: i16 = 42;

    pub fn topic_name(s: &str) -> TopicName {
        TopicName(StrBytes::from_string(s.to_string()))
    }

    /// CreateTopics for `topics` (name, partitions); returns the per-topic error codes.
    pub fn create_topics(c: &mut RawClient, topics: &[(&str, i32)]) -> Vec<(String, i16)> {
        let v = c.pick_version::<CreateTopicsRequest>(7);
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(
                topics
                    .iter()
                    .map(|(name, n)| {
                        CreatableTopic::default()
                            .with_name(topic_name(name))
                            .with_num_partitions(*n)
                            .with_replication_factor(1)
                    })
                    .collect(),
            );
        let resp: CreateTopicsResponse = c.call(v, &req);
        resp.topics
            .iter()
            .map(|t| (t.name.0.to_string(), t.error_code))
            .collect()
    }

    /// CreateTopics of one topic with configs (a `None` value is sent as null); returns
    /// the topic's error code and message.
    pub fn create_topic_with(
        c: &mut RawClient,
        name: &str,
        partitions: i32,
        configs: &[(&str, Option<&str>)],
    ) -> (i16, Option<String>) {
        let v = c.pick_version::<CreateTopicsRequest>(7);
        let str_bytes = |s: &str| StrBytes::from_string(s.to_string());
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(name))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1)
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(str_bytes(k))
                                    .with_value(v.map(str_bytes))
                            })
                            .collect(),
                    ),
            ]);
        let resp: CreateTopicsResponse = c.call(v, &req);
        assert_eq!(resp.topics.len(), 1, "one topic in the CreateTopics answer");
        assert_eq!(resp.topics[0].name.0.as_str(), name);
        let t = &resp.topics[0];
        (
            t.error_code,
            t.error_message.as_ref().map(|m| m.to_string()),
        )
    }

    pub fn create_topic(c: &mut RawClient, name: &str, partitions: i32) {
        let r = create_topics(c, &[(name, partitions)]);
        assert_eq!(r, vec![(name.to_string(), NONE)], "create topic {name}");
    }

    /// Metadata for the given topics (no auto-creation).
    pub fn metadata(c: &mut RawClient, topics: &[&str]) -> MetadataResponse {
        let v = c.pick_version::<MetadataRequest>(12);
        let req = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect(),
            ));
        c.call(v, &req)
    }

    pub fn produce_request(parts: &[(&str, i32, Vec<u8>)]) -> ProduceRequest {
        let mut topics: Vec<TopicProduceData> = Vec::new();
        for (t, p, records) in parts {
            let pd = PartitionProduceData::default()
                .with_index(*p)
                .with_records(Some(Bytes::from(records.clone())));
            match topics.iter_mut().find(|td| td.name.0.as_str() == *t) {
                Some(td) => td.partition_data.push(pd),
                None => topics.push(
                    TopicProduceData::default()
                        .with_name(topic_name(t))
                        .with_partition_data(vec![pd]),
                ),
            }
        }
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(topics)
    }

    /// Produces `records` (encoded batches) to each (topic, partition); returns
    /// (topic, partition, error code, base offset) for every partition in the response.
    pub fn produce(
        c: &mut RawClient,
        parts: &[(&str, i32, Vec<u8>)],
    ) -> Vec<(String, i32, i16, i64)> {
        let v = c.pick_version::<ProduceRequest>(12);
        let resp: ProduceResponse = c.call(v, &produce_request(parts));
        flatten_produce(&resp)
    }

    pub fn flatten_produce(resp: &ProduceResponse) -> Vec<(String, i32, i16, i64)> {
        let mut out = Vec::new();
        for t in &resp.responses {
            for p in &t.partition_responses {
                out.push((t.name.0.to_string(), p.index, p.error_code, p.base_offset));
            }
        }
        out
    }

    /// Produce to one partition; returns (error code, base offset).
    pub fn produce_one(
        c: &mut RawClient,
        topic: &str,
        partition: i32,
        batch: Vec<u8>,
    ) -> (i16, i64) {
        let r = produce(c, &[(topic, partition, batch)]);
        assert_eq!(r.len(), 1, "one partition response expected, got {r:?}");
        assert_eq!(r[0].0, topic);
        assert_eq!(r[0].1, partition);
        (r[0].2, r[0].3)
    }

    /// ListOffsets for one partition at `timestamp` (-1 latest, -2 earliest);
    /// returns (error code, offset).
    pub fn list_offset(
        c: &mut RawClient,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> (i16, i64) {
        let v = c.pick_version::<ListOffsetsRequest>(7);
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(timestamp),
                    ]),
            ]);
        let resp = c.call(v, &req);
        let p = resp
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == topic)
            .and_then(|t| t.partitions.iter().find(|p| p.partition_index == partition))
            .unwrap_or_else(|| panic!("ListOffsets response lacks {topic}-{partition}: {resp:?}"));
        (p.error_code, p.offset)
    }

    pub fn latest_offset(c: &mut RawClient, topic: &str, partition: i32) -> i64 {
        let (err, off) = list_offset(c, topic, partition, -1);
        assert_eq!(err, NONE, "ListOffsets latest {topic}-{partition}");
        off
    }

    /// Fetches each (partition, offset) of `topic` once; returns per partition the error
    /// code, high watermark and decoded records.
    pub fn fetch(
        c: &mut RawClient,
        topic: &str,
        partitions: &[(i32, i64)],
    ) -> Vec<(i32, i16, i64, Vec<Record>)> {
        let v = c.pick_version::<FetchRequest>(12);
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(64 * 1024 * 1024)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|(p, off)| {
                                FetchPartition::default()
                                    .with_partition(*p)
                                    .with_current_leader_epoch(-1)
                                    .with_fetch_offset(*off)
                                    .with_last_fetched_epoch(-1)
                                    .with_log_start_offset(-1)
                                    .with_partition_max_bytes(16 * 1024 * 1024)
                            })
                            .collect(),
                    ),
            ]);
        let resp: FetchResponse = c.call(v, &req);
        assert_eq!(resp.error_code, NONE, "Fetch top-level error");
        let mut out = Vec::new();
        for t in &resp.responses {
            assert_eq!(t.topic.0.as_str(), topic, "Fetch answered another topic");
            for p in &t.partitions {
                let mut records = Vec::new();
                if let Some(bytes) = &p.records {
                    let mut b = bytes.clone();
                    let sets = RecordBatchDecoder::decode_all(&mut b).unwrap_or_else(|e| {
                        panic!(
                            "decode fetched batches of {topic}-{}: {e:#}",
                            p.partition_index
                        )
                    });
                    for s in sets {
                        records.extend(s.records);
                    }
                }
                out.push((p.partition_index, p.error_code, p.high_watermark, records));
            }
        }
        out
    }

    /// Reads a whole partition from `from` up to its high watermark with repeated fetches.
    pub fn fetch_all(c: &mut RawClient, topic: &str, partition: i32, from: i64) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        let mut next = from;
        let mut idle = 0;
        while idle < 50 {
            let r = fetch(c, topic, &[(partition, next)]);
            assert_eq!(r.len(), 1, "one partition in Fetch response");
            let (p, err, hw, records) = r.into_iter().next().expect("one partition");
            assert_eq!(p, partition);
            assert_eq!(err, NONE, "Fetch {topic}-{partition} at {next}");
            if next >= hw {
                return out;
            }
            let before = next;
            for rec in records {
                // A fetch may start mid-batch: skip records before the requested offset.
                if rec.offset >= next {
                    next = rec.offset + 1;
                    out.push(rec);
                }
            }
            if next >= hw {
                return out;
            }
            idle = if next == before { idle + 1 } else { 0 };
        }
        panic!("fetching {topic}-{partition} from {next} returned no records 50 times");
    }
}

/// Runs `ringbroker ARGS...` to completion (it is expected to refuse to start); returns its
/// exit status and stderr. Kills it and fails the test if it is still running after `timeout`.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> (ExitStatus, String) {
    let dir = disk_tempdir("rb-exit-");
    let err_path = dir.path().join("stderr.log");
    let err = File::create(&err_path).expect("create stderr file");
    let mut child = Command::new(broker_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn ringbroker");
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            return (st, stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            panic!(
                "`ringbroker {}` still running after {timeout:?}; stderr:\n{stderr}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wall-clock milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Makes sure python3 can import `module`, installing `package` with pip when it cannot:
/// the test command runs scripts/setup.sh first; this covers a direct `cargo test`.
pub fn ensure_python_module(module: &str, package: &str) {
    let has = || {
        std::process::Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    for extra in [&[][..], &["--break-system-packages"][..]] {
        if has() {
            return;
        }
        let _ = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet"])
            .args(extra)
            .arg(package)
            .status();
    }
    assert!(
        has(),
        "{package} is not installed (scripts/setup.sh installs it)"
    );
}

pub fn ensure_kafka_python() {
    ensure_python_module("kafka", "kafka-python");
}

/// `ringbroker users add` of `user` with `password` for `mechanism` in the data dir `data`
/// (which no running broker holds).
pub fn users_add(data: &Path, mechanism: &str, user: &str, password: &str) {
    let (status, stderr) = run_to_exit(
        &[
            "users",
            "add",
            "--data-dir",
            data.to_str().expect("a UTF-8 data dir"),
            "--mechanism",
            mechanism,
            "--user",
            user,
            "--password",
            password,
        ],
        Duration::from_secs(30),
    );
    assert!(status.success(), "users add: {stderr}");
}

/// Runs `tests/python/SCRIPT ARGS...`; fails the test unless it exits 0 and its output
/// ends with `OK`. Returns its output.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "python", script]
        .iter()
        .collect();
    let out = std::process::Command::new("python3")
        .arg(&path)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{script} failed ({}): {stdout}",
        out.status
    );
    assert!(stdout.ends_with("OK\n"), "{script}: {stdout}");
    stdout
}

/// A record timestamp a minute ago, as of the first call: recent enough that retention
/// (7 days by default, checked continuously) never deletes test data.
pub fn recent_ts() -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| now_ms() - 60_000)
}
