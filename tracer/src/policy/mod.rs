//! Tracing policies: YAML `TracingPolicy` documents in Tetragon's schema, from text to
//! what the kernel runs. The stages, in order:
//!
//! 1. [`parse`]: YAML text to documents ([`model`]); every error names file, line,
//!    column and field.
//! 2. [`validate`]: a document to its typed [`spec`], checking what the schema alone
//!    cannot say (operators, limits, values); no string is read again after this.
//! 3. [`facts`]: the kernel's facts the next stages need, gathered once (program types,
//!    tracepoint formats, host namespaces).
//! 4. [`place`]: where each hook runs (a tracepoint, a function on a kprobe, fentry or
//!    BPF LSM program, the raw syscall tracepoints) and the record it reads there.
//! 5. [`compile`]: each placed hook to its kernel configuration (pure).
//! 6. [`store`]: installs and counts (hook points, lists, gates, programs, maps).
//!
//! Policies come from [`files`] (files and a directory) and [`objects`] (Kubernetes
//! objects, whose CRDs [`crd`] generates from [`model`]); [`sock`] reads socket values,
//! [`suggest`] finds the name that was meant. `tracer policy validate FILE...` runs
//! stages 1 and 2, loading nothing.

pub mod binary;
pub mod compile;
pub mod crd;
pub mod facts;
pub mod files;
pub mod model;
pub mod objects;
pub mod parse;
pub mod place;
pub mod requests;
pub mod sock;
pub mod spec;
pub mod store;
pub mod suggest;
pub mod validate;

use std::fmt;

/// Logs how loading policy `name` from `source` went (from a file or an object).
/// `took`: how long installing it took.
pub fn log_load(
    name: &str,
    source: &str,
    result: &Result<Vec<store::FailedHook>, store::StoreError>,
    took: std::time::Duration,
) {
    let ms = took.as_secs_f64() * 1000.0;
    match result {
        Ok(failed) if failed.is_empty() => {
            tracing::info!("policy {name} loaded from {source} in {ms:.2} ms")
        }
        // Each hook's failure is logged by the store.
        Ok(failed) => tracing::warn!(
            "policy {name} partly loaded from {source} in {ms:.2} ms: {} of its hooks are not running",
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
