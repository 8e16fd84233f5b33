//! The sans-IO link state machine.
#![forbid(unsafe_code)]
