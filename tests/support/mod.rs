//! Shared test support.
pub mod pair;
