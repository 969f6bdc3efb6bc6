//! `cargo xtask`: what a fresh machine needs, and the README's two commands.
//!
//! - `cargo xtask setup`: the nightly's `rust-src` and a `bpf-linker` built against the
//!   nightly's own LLVM. Idempotent; quick when already done.
//! - `cargo xtask run [-- ARGS]`: set-up, build, and run the agent (`tracer run ARGS`).
//! - `cargo xtask test`: set-up, formatting, lints, unit tests, then the privileged
//!   integration tests that load the real programs.
//! - `cargo xtask integration-test [--kernel host|debian-6.1|debian-6.12]`: the
//!   privileged tests on the host's kernel and on Debian's, one report per kernel.
//! - `cargo xtask image [--debug] [--push REF]`: the agent's container image, as an OCI
//!   archive under `target/image/` (see `image.rs`).
//! - `cargo xtask bench [--quick] [--only NAME...] [--rounds N] [--out DIR] [--keep-output]`: the
//!   benchmarks, against no tracer and against bpftrace (see `bench.rs`).
//! - `cargo xtask soak [--minutes N] [--interval-secs S] [--out DIR]`: the agent with the
//!   policy library under a mixed workload for a while, its memory, descriptors, map
//!   entries and event accounting sampled (see `soak.rs`).
//! - `cargo xtask fuzz [--seconds N] [--runs M] [--jobs J] [--target NAME]...`: the fuzz targets of
//!   `fuzz/` on their seed corpora (see `fuzz.rs`).

mod bench;
mod fuzz;
mod image;
mod manifests;
mod setup;
mod soak;
mod test;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building the eBPF programs needs (nightly rust-src, bpf-linker).
    Setup,
    /// Build and run the agent; arguments after `--` go to `tracer run`.
    Run {
        /// Build without optimisations (faster to build, slower to run).
        #[arg(long)]
        debug: bool,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run every test: formatting, clippy, unit tests, integration tests (as root).
    Test {
        /// Skip `cargo fmt --check` and clippy.
        #[arg(long)]
        no_lint: bool,
        /// Only the tests whose name contains this (passed to the test binaries).
        filter: Option<String>,
    },
    /// The privileged tests on chosen kernels: `host` (the tests of `integration/` on
    /// this machine's kernel) and Debian's kernels booted under qemu (`debian-6.1`,
    /// `debian-6.12`), each reported on its own. Without `--kernel`, all of them.
    IntegrationTest {
        /// `host`, `debian-6.1` or `debian-6.12` (repeatable).
        #[arg(long = "kernel", value_name = "KERNEL")]
        kernels: Vec<String>,
    },
    /// Build the agent's container image (buildah, no daemon) as an OCI archive under
    /// target/image/, tagged as the manifests name it.
    Image {
        /// From the debug build (quicker to build; what the tests use).
        #[arg(long)]
        debug: bool,
        /// Then push it to this reference (`registry.example/tracer:TAG`).
        #[arg(long, value_name = "REF")]
        push: Option<String>,
    },
    /// The benchmarks (as root): each workload with no tracer, the agent and bpftrace,
    /// interleaved over rounds; a table, `report.json` and a plot, `bench.png`.
    Bench {
        /// Draw the plot again from the last report (DIR/report.json), without running.
        #[arg(long)]
        plot_only: bool,
        /// Fewer rounds and shorter workloads (for development).
        #[arg(long)]
        quick: bool,
        /// Only these benchmarks: exec, default, nomatch, pipeline, overload, connect,
        /// enforce, userspace, memory, scale.
        #[arg(long, value_name = "NAME", num_args = 1..)]
        only: Vec<String>,
        /// Rounds of each benchmark (default 5; 2 with --quick, 1 for scale).
        #[arg(long, value_name = "N")]
        rounds: Option<usize>,
        /// Where the report, the plot and the workloads' files go (default target/bench).
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
        /// Keep each run's event stream (DIR/work/*.json, *.bt) once counted; by default
        /// it is removed, as a full run writes tens of GiB of them.
        #[arg(long)]
        keep_output: bool,
    },
    /// The agent (release) with the policy library for a set time under a mixed workload
    /// (as root): resident memory, descriptors, eBPF map entries and the event accounting
    /// every interval; a table, `soak.csv`, `soak-plot.txt` and `soak.md`.
    Soak {
        /// How long the agent runs under the workload.
        #[arg(long, value_name = "N", default_value_t = 30)]
        minutes: u64,
        /// Seconds between samples (and between changes of the policies).
        #[arg(long, value_name = "S", default_value_t = 60)]
        interval_secs: u64,
        /// Where the report and the agent's files go (default target/soak).
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
    /// Fuzz the parsers and the record decoder (cargo-fuzz on the nightly), each target
    /// on its seed corpus (built in target/fuzz-corpus/); fails on a crash, naming its
    /// input.
    Fuzz {
        /// Each target's time, in seconds.
        #[arg(long, value_name = "N", default_value_t = 60)]
        seconds: u64,
        /// Each target's number of inputs at most (libFuzzer's -runs).
        #[arg(long, value_name = "M")]
        runs: Option<u64>,
        /// Only this target (repeatable): policy_yaml, policy_object, export_filter,
        /// field_filter, redaction, otlp_config, metrics_addr, decode.
        #[arg(long = "target", value_name = "NAME")]
        targets: Vec<String>,
        /// How many targets run at once (default: the number of CPUs).
        #[arg(long, value_name = "J")]
        jobs: Option<usize>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Setup => setup::setup(),
        Cmd::Run { debug, args } => setup::setup().and_then(|()| run(debug, &args)),
        Cmd::Test { no_lint, filter } => {
            setup::setup().and_then(|()| test::test(!no_lint, filter.as_deref()))
        }
        Cmd::IntegrationTest { kernels } => {
            setup::setup().and_then(|()| test::integration(&kernels))
        }
        Cmd::Image { debug, push } => {
            setup::setup().and_then(|()| image::image(&image::Options { debug, push }).map(|_| ()))
        }
        Cmd::Bench {
            plot_only,
            quick,
            only,
            rounds,
            out,
            keep_output,
        } => setup::setup().and_then(|()| {
            bench::bench(bench::Options {
                plot_only,
                quick,
                only,
                rounds,
                out,
                keep_output,
            })
        }),
        Cmd::Soak {
            minutes,
            interval_secs,
            out,
        } => setup::setup().and_then(|()| {
            soak::soak(soak::Options {
                minutes,
                interval_secs,
                out,
            })
        }),
        Cmd::Fuzz {
            seconds,
            runs,
            targets,
            jobs,
        } => setup::setup().and_then(|()| {
            fuzz::fuzz(&fuzz::Options {
                seconds,
                runs,
                targets,
                jobs,
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(debug: bool, args: &[String]) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let mut build = setup::cargo();
    build.args(["build", "--package", "tracer", "--bin", "tracer"]);
    if !debug {
        build.arg("--release");
    }
    setup::status(&mut build)?;
    let bin = setup::workspace_root()
        .join("target")
        .join(if debug { "debug" } else { "release" })
        .join("tracer");
    eprintln!("xtask: running {} run {}", bin.display(), args.join(" "));
    // Replace this process, so that Ctrl-C and SIGTERM reach the agent directly.
    let err = std::process::Command::new(&bin)
        .arg("run")
        .args(args)
        .exec();
    Err(anyhow::anyhow!("cannot run {}: {err}", bin.display()))
}
