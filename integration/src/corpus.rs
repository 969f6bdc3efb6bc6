//! Tetragon's example policies, read where the shared corpus keeps them (never copied
//! into the project).

use std::path::{Path, PathBuf};

/// The corpus's example policies: `TRACER_TETRAGON_CORPUS`, or `../shared/conformance/
/// tetragon/examples` beside the project.
pub fn corpus() -> PathBuf {
    let dir = std::env::var_os("TRACER_TETRAGON_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/tetragon/examples")
        });
    assert!(
        dir.is_dir(),
        "Tetragon's example policies are not at {} (set TRACER_TETRAGON_CORPUS to the corpus's `examples` directory)",
        dir.display()
    );
    dir
}

/// Every `.yaml`/`.yml` file under `dir`, by its path relative to `dir`.
pub fn policies(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            policies(&path, base, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            let name = path
                .strip_prefix(base)
                .expect("under the corpus")
                .to_string_lossy()
                .into_owned();
            out.push((name, path));
        }
    }
}
