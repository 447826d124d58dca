//! Empty library target: it lets `netwatch` declare this crate as a
//! build-dependency, so cargo rebuilds netwatch when the programs change.
#![no_std]
