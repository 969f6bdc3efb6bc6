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
    kustomization(&root)?;
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

/// The kustomization as `kubectl kustomize` renders it (Debian's kubernetes-client,
/// installed if missing): every object of the manifests, valid against the schemas, and
/// an overlay's `images:` (as the README tells a user to write one) naming the image.
fn kustomization(root: &std::path::Path) -> anyhow::Result<()> {
    crate::setup::apt_install(&[("kubectl", "kubernetes-client")])?;
    let dir = root.join("target/kustomize-check");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let rendered = crate::setup::output(
        Command::new("kubectl")
            .arg("kustomize")
            .arg(root.join("manifests")),
    )
    .context("kubectl kustomize manifests/")?;
    let kinds: Vec<&str> = rendered
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    for kind in [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
    ] {
        if !kinds.contains(&kind) {
            bail!("kubectl kustomize manifests/ renders no {kind}: {kinds:?}");
        }
    }
    let file = dir.join("rendered.yaml");
    std::fs::write(&file, &rendered)?;
    status(
        Command::new("kubernetes-validate")
            .args(["--strict", "--kubernetes-version", KUBERNETES])
            .arg(&file),
    )
    .context("the rendered kustomization against the Kubernetes schemas")?;
    let overlay = dir.join("overlay");
    std::fs::create_dir_all(&overlay)?;
    std::fs::write(
        overlay.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../../../manifests\nimages:\n- name: ghcr.io/tracer/tracer\n  newName: registry.example/tracer\n  newTag: v-test\n",
    )?;
    let over = crate::setup::output(Command::new("kubectl").arg("kustomize").arg(&overlay))
        .context("kubectl kustomize of an overlay with images:")?;
    if !over.contains("image: registry.example/tracer:v-test") {
        bail!("an overlay's images: does not set the DaemonSet's image");
    }
    println!(
        "xtask: kubectl kustomize manifests/: {} objects, valid; an images: overlay sets the image",
        kinds.len()
    );
    Ok(())
}

fn works(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}
