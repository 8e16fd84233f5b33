//! The only `unsafe` in fcvpn: thin wrappers over kernel ABIs (ioctls, and later the TCMU ring
//! and SG_IO). Every `unsafe` block carries a `// SAFETY:` comment; struct layouts that cross
//! into the kernel are checked by tests (size and offsets).

pub mod caps;
pub mod io;
pub mod sg;
pub mod tcmu;
pub mod tun;
