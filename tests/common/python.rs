//! kafka-python scripts of `tests/python/` run against a broker (kafka-python is installed
//! with pip when missing).

/// Runs `tests/python/admin_partitions.py MODE BOOTSTRAP TOPIC`; returns its stdout.
pub fn run_admin_script(mode: &str, bootstrap: &str, topic: &str) -> String {
    crate::common::ensure_kafka_python();
    crate::common::run_python("admin_partitions.py", &[mode, bootstrap, topic])
}
