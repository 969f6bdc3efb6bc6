//! Where events go: JSON lines on stdout, or in a rotated file.

pub mod file;
pub mod json;
