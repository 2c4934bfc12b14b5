//! A value every shard reads and a rare admin request replaces, kept in one JSON file of
//! the data dir: the ACL bindings, the SASL users.
//!
//! Readers take the read lock only to clone an `Arc`. A change builds a new value from a
//! copy, writes it durably (temporary file, fsync, rename, fsync of the directory) on the
//! blocking thread pool, and only then swaps it in, so what is served is always on disk.
//! Changes are serialised by an async lock, so two never lose each other's work.

use crate::security::acl::write_atomically;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

pub struct Durable<T> {
    value: RwLock<Arc<T>>,
    changes: async_lock::Mutex<()>,
    /// The file, and the temporary file written first.
    path: PathBuf,
    tmp: PathBuf,
}

impl<T: Clone + Serialize> Durable<T> {
    pub fn new(value: T, path: PathBuf) -> Durable<T> {
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        Durable {
            value: RwLock::new(Arc::new(value)),
            changes: async_lock::Mutex::new(()),
            path,
            tmp: PathBuf::from(tmp),
        }
    }

    /// The value now.
    pub fn current(&self) -> Arc<T> {
        match self.value.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Applies `change` to a copy, makes the copy durable, then serves it. Nothing
    /// changes when writing fails.
    pub async fn change<R>(&self, change: impl FnOnce(&mut T) -> R) -> std::io::Result<R> {
        let _one_at_a_time = self.changes.lock().await;
        let mut next = (*self.current()).clone();
        let result = change(&mut next);
        let bytes = serde_json::to_vec_pretty(&next).map_err(std::io::Error::other)?;
        let (tmp, path) = (self.tmp.clone(), self.path.clone());
        glommio::executor()
            .spawn_blocking(move || write_atomically(&bytes, &tmp, &path))
            .await?;
        match self.value.write() {
            Ok(mut v) => *v = Arc::new(next),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
        }
        Ok(result)
    }
}
