//! One module per user-facing command.

pub mod check;
pub mod diff;
pub mod docs;
pub mod events;
mod netns;
pub mod serve;
pub mod snapshot;
