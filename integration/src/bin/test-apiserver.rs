//! `test-apiserver DIR`: the tests' Kubernetes API server (`integration::apiserver`) as a
//! process of its own, serving no objects, for `cargo xtask bench --only scale`: the agent
//! refuses pod-scoped policies unless it knows an API server. Writes a kubeconfig for it
//! to `DIR/kubeconfig`, prints that path on a line of its own, and serves until its stdin
//! closes.

use std::{io::Read as _, path::PathBuf, process::ExitCode};

use integration::apiserver::ApiServer;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: test-apiserver DIR (where to write the kubeconfig)");
        return ExitCode::from(2);
    };
    if !dir.is_dir() {
        eprintln!("test-apiserver: {} is not a directory", dir.display());
        return ExitCode::from(2);
    }
    let server = ApiServer::start();
    let kubeconfig = server.kubeconfig(&dir);
    println!("{}", kubeconfig.display());
    eprintln!("test-apiserver: serving on {}", server.url());
    // Until whoever started it closes our stdin (or exits).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    ExitCode::SUCCESS
}
