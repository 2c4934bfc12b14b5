//! Deterministic, realistic log lines (JSON application logs and RFC 5424 syslog) for codec
//! benchmarks: repetitive field names and hosts, varying ids, latencies and timestamps, as
//! real logs are. A small xorshift generator keeps the output the same on every run.

/// Log line generator; the same seed gives the same lines.
pub struct LogLines {
    state: u64,
    ts_ms: i64,
    seq: u64,
}

const SERVICES: &[&str] = &[
    "checkout",
    "payments",
    "inventory",
    "auth",
    "search",
    "gateway",
];
const HOSTS: &[&str] = &[
    "web-01",
    "web-02",
    "api-07",
    "api-11",
    "worker-3",
    "db-proxy-2",
];
const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
const PATHS: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/orders/{id}",
    "/api/v1/cart",
    "/api/v2/search",
    "/healthz",
    "/api/v1/users/{id}/sessions",
];
const MESSAGES: &[&str] = &[
    "request completed",
    "cache miss, loading from backend",
    "retrying upstream call after timeout",
    "user session refreshed",
    "slow query detected",
    "connection pool exhausted, waiting",
];

impl LogLines {
    pub fn new(seed: u64) -> LogLines {
        LogLines {
            state: seed | 1,
            ts_ms: 1_763_700_000_000,
            seq: 0,
        }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next_u64() % from.len() as u64) as usize]
    }

    /// The next line, without a trailing newline: alternately JSON and syslog-like.
    pub fn next_line(&mut self) -> String {
        self.seq += 1;
        self.ts_ms += (self.next_u64() % 40) as i64;
        let service = self.pick(SERVICES);
        let host = self.pick(HOSTS);
        let level = self.pick(LEVELS);
        let msg = self.pick(MESSAGES);
        let path = self.pick(PATHS);
        let latency_us = self.next_u64() % 250_000;
        let status = [200, 200, 200, 201, 404, 500][(self.next_u64() % 6) as usize];
        let trace = self.next_u64();
        let user = self.next_u64() % 100_000;
        if self.seq.is_multiple_of(3) {
            let secs = self.ts_ms / 1000;
            format!(
                "<134>1 {secs}.{:03} {host} {service} {} - - [{level}] {msg} path={path} status={status} latency_us={latency_us} trace={trace:016x}",
                self.ts_ms % 1000,
                4000 + user % 64
            )
        } else {
            format!(
                "{{\"ts\":{},\"level\":\"{level}\",\"service\":\"{service}\",\"host\":\"{host}\",\"msg\":\"{msg}\",\"http\":{{\"method\":\"GET\",\"path\":\"{path}\",\"status\":{status}}},\"latency_us\":{latency_us},\"user_id\":{user},\"trace_id\":\"{trace:016x}\",\"seq\":{}}}",
                self.ts_ms, self.seq
            )
        }
    }

    /// About `bytes` of newline-separated lines.
    pub fn bytes(&mut self, bytes: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes + 512);
        while out.len() < bytes {
            out.extend_from_slice(self.next_line().as_bytes());
            out.push(b'\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_deterministic_and_varied() {
        let a = LogLines::new(7).bytes(10_000);
        let b = LogLines::new(7).bytes(10_000);
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 30);
        assert!(lines.iter().any(|l| l.starts_with('{')));
        assert!(lines.iter().any(|l| l.starts_with("<134>")));
        let distinct: std::collections::HashSet<&&str> = lines.iter().collect();
        assert_eq!(distinct.len(), lines.len());
    }
}
