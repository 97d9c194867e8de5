//! The night drill (issue 20).

pub mod roles;
