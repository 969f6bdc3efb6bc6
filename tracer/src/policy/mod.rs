//! Tracing policies: YAML `TracingPolicy` documents in Tetragon's schema.
//!
//! - [`model`]: the documents, as far as the tracer supports them.
//! - [`parse`]: YAML text to documents; every error names file, line, column and field.
//! - [`validate`]: what the schema alone cannot say (operators, limits, values).
//! - [`compile`]: a document to the kernel's hook configurations.
//! - [`store`]: installs compiled policies (maps, programs, attachments).
//! - [`files`]: policies from files and a directory; [`objects`]: from Kubernetes
//!   objects, whose CRDs [`crd`] generates from [`model`].
//!
//! `tracer policy validate FILE...` runs parse and validate, loading nothing.

pub mod compile;
pub mod crd;
pub mod files;
pub mod model;
pub mod objects;
pub mod parse;
pub mod sock;
pub mod store;
pub mod validate;

use std::fmt;

/// Logs how loading policy `name` from `source` went (from a file or an object).
pub fn log_load(
    name: &str,
    source: &str,
    result: &Result<Vec<store::FailedHook>, store::StoreError>,
) {
    match result {
        Ok(failed) if failed.is_empty() => tracing::info!("policy {name} loaded from {source}"),
        // Each hook's failure is logged by the store.
        Ok(failed) => tracing::warn!(
            "policy {name} partly loaded from {source}: {} of its hooks are not running",
            failed.len()
        ),
        Err(e) => tracing::error!("policy refused: {source}: {e}"),
    }
}

/// Limits of a policy. Where Tetragon's differ, these meet or lift them; the README
/// lists each.
pub mod limits {
    /// Selectors per hook (Tetragon: 5).
    pub const MAX_SELECTORS: usize = 8;
    /// Arguments per hook (Tetragon: 5; a syscall has 6).
    pub const MAX_ARGS: usize = 6;
    /// Values of one `matchArgs`, `matchPIDs` or `matchBinaries` filter.
    pub const MAX_VALUES: usize = 16;
    /// Bytes of a string value (`Equal`, `Prefix`, and paths): the longest string the
    /// kernel side captures (256 bytes with its NUL). Tetragon: 256, `Equal` 4096.
    pub const MAX_STRING: usize = tracer_common::policy::STRING_MAX - 1;
    /// Bytes of a `Postfix` value (Tetragon: 127).
    pub const MAX_POSTFIX: usize = tracer_common::policy::PREFIX_MAX;
    /// `matchBinaries` per selector (as Tetragon).
    pub const MAX_MATCH_BINARIES: usize = 1;
    /// Tags per hook and characters of a message (as Tetragon).
    pub const MAX_TAGS: usize = 16;
    pub const MAX_MESSAGE: usize = 256;
}

/// An error in a policy document, at a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: String,
    /// 1-based; 0 when the place is unknown.
    pub line: usize,
    pub column: usize,
    /// Field path, `spec.tracepoints[0].selectors[1].matchArgs[0].operator`.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
    /// How to fix it, where that is obvious.
    pub fix: Option<String>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n  fix: {fix}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}
