//! Everything that crosses the kernel/user boundary, defined once.
//!
//! Records are `#[repr(C)]`, flat, free of implicit padding, `bool` and `u128`,
//! and their sizes are pinned by const assertions so that a field added on one
//! side and not the other fails the build instead of corrupting the stream.
//! Map and program names live here so the loader never spells them twice.
#![no_std]

pub mod dns;
pub mod names;
pub mod offsets;
pub mod process;
pub mod record;
pub mod tcp;
pub mod traffic;

pub use dns::DnsEvent;
pub use offsets::KernelOffsets;
pub use process::{ProcEvent, ProcKind};
pub use record::{Bytes16, Counter, EventKind, OwnerSource, SockEvent, SocketFd, SOCK_EVENT_HEAD};
pub use traffic::{Traffic, DROP_SLOTS, TRAFFIC_SOCKETS};
