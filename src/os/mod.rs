//! Thin wrappers over the Linux calls the broker makes itself: socket options, resource
//! limits, signals and filesystem space. The lowest layer, beside `protocol`: anything may use it.

pub mod disk;
pub mod limits;
pub mod pagecache;
pub mod signals;
pub mod sockopt;
