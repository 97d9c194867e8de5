//! Durability helpers for files the database points at: they live in the leaf
//! [`crate::durable`] (the media recorder syncs its files too, and media does not import store).
//!
//! Order for a voicemail: write the file, `fsync_file` it (which also syncs its directory so
//! the name survives a crash), then commit the ticket row that names it, then page.

pub use crate::durable::fsync_file;
