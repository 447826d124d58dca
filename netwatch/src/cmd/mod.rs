//! One module per user-facing command.

pub mod events;
pub mod serve;
pub mod snapshot;
