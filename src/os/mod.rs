//! Thin wrappers over the Linux calls the broker makes itself: socket options, resource
//! limits and signals. The lowest layer, beside `protocol`: anything may use it.

pub mod limits;
pub mod signals;
pub mod sockopt;
