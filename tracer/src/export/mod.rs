//! Where events go. JSON lines on stdout for now.

pub mod json;
