//! The manifests, validated offline: every object of `manifests/` against the Kubernetes
//! schemas (PyPI's kubernetes-validate), and every policy of `policies/` against the
//! TracingPolicy CRD's schema, which must also reject a broken one.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::setup::{status, workspace_root};

/// The Kubernetes version the manifests are checked against.
const KUBERNETES: &str = "1.33.0";

pub fn validate() -> anyhow::Result<()> {
    if !works(Command::new("kubernetes-validate").arg("--version")) {
        println!("xtask: installing kubernetes-validate (PyPI) for the manifest checks");
        status(Command::new("python3").args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "kubernetes-validate",
        ]))
        .context(
            "installing kubernetes-validate with pip (python3 -m pip install kubernetes-validate)",
        )?;
    }
    let root = workspace_root();
    let manifests: Vec<String> = ["namespace.yaml", "crds.yaml", "rbac.yaml", "daemonset.yaml"]
        .iter()
        .map(|f| root.join("manifests").join(f).display().to_string())
        .collect();
    status(
        Command::new("kubernetes-validate")
            .args(["--strict", "--kubernetes-version", KUBERNETES])
            .args(&manifests),
    )
    .context("manifests/ against the Kubernetes schemas")?;
    let script = root.join("xtask/src/policies_against_crd.py");
    let ok = Command::new("python3")
        .arg(&script)
        .arg(root.join("manifests/crds.yaml"))
        .arg(root.join("policies"))
        .status()
        .context("running python3")?
        .success();
    if !ok {
        bail!("the policies of policies/ against the TracingPolicy CRD's schema (see above)");
    }
    Ok(())
}

/// Python's protobuf with grpcio-tools' protoc (PyPI), for the tests that decode the
/// JSON lines with Tetragon's proto (`integration::proto`).
pub fn python_protobuf() -> anyhow::Result<()> {
    if works(Command::new("python3").args(["-c", "import grpc_tools.protoc, google.protobuf"])) {
        return Ok(());
    }
    println!("xtask: installing grpcio-tools (PyPI) for the protobuf conformance tests");
    status(Command::new("python3").args(["-m", "pip", "install", "--quiet", "grpcio-tools"]))
        .context("installing grpcio-tools with pip (python3 -m pip install grpcio-tools)")
}

fn works(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}
