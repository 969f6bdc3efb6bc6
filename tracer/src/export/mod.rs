//! Where events go: JSON lines on stdout, or in a rotated file; log records to an
//! OpenTelemetry collector.

pub mod file;
pub mod json;
pub mod otlp;
