//! The benchmarks' results: rows of a table (a figure, its target, where it stands),
//! every run's values, the BPF run statistics, and the panels of the plot; written as a
//! table on stdout, `report.md`, `report.json` and `bench.png`.

use std::{fmt::Write as _, fs, path::Path};

use anyhow::Context as _;
use serde_json::{Value, json};

use super::{RunRecord, Values, run::Setup};

/// Where a figure stands against its target.
#[derive(Clone, Debug)]
pub enum Status {
    Met,
    Missed(String),
    /// A figure with no target of its own.
    Info,
}

impl Status {
    fn text(&self) -> String {
        match self {
            Status::Met => "met".into(),
            Status::Missed(by) => format!("missed: {by}"),
            Status::Info => String::new(),
        }
    }
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    pub what: String,
    pub value: String,
    pub target: String,
    pub status: Status,
}

impl Row {
    pub fn info(what: &str, value: String, note: &str) -> Row {
        Row {
            what: what.to_owned(),
            value,
            target: note.to_owned(),
            status: Status::Info,
        }
    }

    /// A ratio (or fraction) that should be at least `min`.
    pub fn at_least(what: &str, x: f64, min: f64, digits: usize, target: &str) -> Row {
        Row {
            what: what.to_owned(),
            value: format!("{x:.digits$}"),
            target: target.to_owned(),
            status: if x >= min {
                Status::Met
            } else {
                Status::Missed(format!("by {:.digits$}", min - x))
            },
        }
    }

    /// A rate that should be at least `min`.
    pub fn at_least_count(what: &str, x: f64, min: f64) -> Row {
        Row {
            what: what.to_owned(),
            value: format!("{}/s", count(x)),
            target: format!("≥ {}/s", count(min)),
            status: if x >= min {
                Status::Met
            } else {
                Status::Missed(format!(
                    "by {}/s ({:.0} % of it)",
                    count(min - x),
                    x / min * 100.0
                ))
            },
        }
    }
}

/// A chart of the plot: bars, or, when it has `series`, lines on log-log axes.
#[derive(Clone, Debug, Default)]
pub struct Panel {
    pub title: String,
    pub unit: String,
    pub bars: Vec<(String, f64)>,
    /// A horizontal line: (value, label).
    pub target: Option<(f64, String)>,
    /// The top of the value axis, when not from the bars.
    pub max: Option<f64>,
    /// Lines instead of bars: (label, [(x, y)]), both axes logarithmic.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// The x axis's name, for lines.
    pub x_unit: String,
}

/// An eBPF program's statistics: (name, runs, ns per run).
type Program = (String, f64, f64);

impl Panel {
    fn to_json(&self) -> Value {
        json!({
            "title": self.title,
            "unit": self.unit,
            "bars": self.bars.iter().map(|(l, v)| json!([l, v])).collect::<Vec<_>>(),
            "target": self.target.as_ref().map(|(v, l)| json!([v, l])),
            "max": self.max,
            "series": self.series.iter().map(|(l, pts)| json!({
                "label": l,
                "points": pts.iter().filter(|(x, y)| x.is_finite() && y.is_finite()).map(|(x, y)| json!([x, y])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "x_unit": self.x_unit,
        })
    }

    fn from_json(v: &Value) -> Option<Panel> {
        let pair = |p: &Value| -> Option<(String, f64)> {
            Some((p[0].as_str()?.to_owned(), p[1].as_f64().unwrap_or(f64::NAN)))
        };
        let point = |p: &Value| Some((p[0].as_f64()?, p[1].as_f64()?));
        let line = |l: &Value| -> Option<(String, Vec<(f64, f64)>)> {
            Some((
                l["label"].as_str()?.to_owned(),
                l["points"].as_array()?.iter().filter_map(point).collect(),
            ))
        };
        Some(Panel {
            title: v["title"].as_str()?.to_owned(),
            unit: v["unit"].as_str()?.to_owned(),
            bars: v["bars"].as_array()?.iter().filter_map(pair).collect(),
            target: v["target"]
                .as_array()
                .and_then(|t| Some((t.first()?.as_f64()?, t.get(1)?.as_str()?.to_owned()))),
            max: v["max"].as_f64(),
            series: v["series"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(line)
                .collect(),
            x_unit: v["x_unit"].as_str().unwrap_or_default().to_owned(),
        })
    }
}

/// Draws `bench.png` again from the `report.json` in `out` (after a change of style).
pub fn replot(out: &Path) -> anyhow::Result<()> {
    let path = out.join("report.json");
    let report: Value = serde_json::from_str(
        &fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", path.display()))?;
    let panels: Vec<Panel> = report["figures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Panel::from_json)
        .collect();
    let png = out.join("bench.png");
    super::plot::draw(&png, &panels.iter().collect::<Vec<_>>(), &report["context"])?;
    eprintln!("xtask: wrote {}", png.display());
    Ok(())
}

/// One benchmark's results.
pub struct BenchResult {
    pub name: &'static str,
    pub title: &'static str,
    pub setups: Vec<String>,
    pub runs: Vec<RunRecord>,
    /// The pass with BPF run statistics on: one run per traced setup.
    pub stats: Vec<RunRecord>,
    pub rows: Vec<Row>,
    pub panels: Vec<Panel>,
    pub notes: Vec<String>,
    /// Tables of their own (Markdown), after the main one: a benchmark whose figures
    /// form a grid (`scale`).
    pub tables: Vec<String>,
    /// The figures as data, for report.json, where rows of text would lose them.
    pub data: Option<Value>,
    pub error: Option<String>,
}

impl BenchResult {
    pub fn new(setups: &[Setup], runs: Vec<RunRecord>, stats: Vec<RunRecord>) -> Self {
        Self {
            name: "",
            title: "",
            setups: setups.iter().map(|s| s.name.to_owned()).collect(),
            runs,
            stats,
            rows: Vec::new(),
            panels: Vec::new(),
            notes: Vec::new(),
            tables: Vec::new(),
            data: None,
            error: None,
        }
    }

    pub fn failed(name: &'static str, title: &'static str, error: &str) -> Self {
        let mut r = Self::new(&[], Vec::new(), Vec::new());
        r.name = name;
        r.title = title;
        r.error = Some(error.to_owned());
        r
    }

    /// Each program's ns per run, by setup: `(setup, [(program, runs, ns)])`.
    fn programs(&self) -> Vec<(&'static str, Vec<Program>)> {
        self.stats
            .iter()
            .map(|r| {
                let progs = r
                    .values
                    .iter()
                    .filter_map(|(k, ns)| {
                        let name = k.strip_prefix("prog:")?;
                        let runs = r
                            .values
                            .get(&format!("prog_runs:{name}"))
                            .copied()
                            .unwrap_or(0.0);
                        Some((name.to_owned(), runs, *ns))
                    })
                    .collect();
                (r.setup, progs)
            })
            .collect()
    }
}

/// A count for people: `1.23M`, `456k`, `789`.
pub fn count(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let a = x.abs();
    if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// The main values of a run, on one line, for the progress log.
pub fn brief(v: &Values) -> String {
    const KEYS: [&str; 13] = [
        "call_rate",
        "exec_rate",
        "stress_rate",
        "exec_delivered",
        "ns_per_call",
        "rate",
        "per_core",
        "loss",
        "unaccounted",
        "connect_rate",
        "delivered",
        "killed",
        "side_effects",
    ];
    let mut out = Vec::new();
    for k in KEYS {
        if let Some(x) = v.get(k) {
            let shown = if x.abs() >= 1000.0 {
                count(*x)
            } else {
                format!("{x:.3}")
            };
            out.push(format!("{k}={shown}"));
        }
    }
    if let Some(cpu) = v.get("cpu_s") {
        out.push(format!("cpu={cpu:.2}s"));
    }
    if let Some(lost) = v.get("agent.kernel_lost").filter(|l| **l > 0.0) {
        out.push(format!("kernel_lost={lost:.0}"));
    }
    out.join(" ")
}

/// The table, as Markdown.
pub fn markdown(results: &[BenchResult]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "| benchmark | figure | value | target | status |");
    let _ = writeln!(t, "| --- | --- | --- | --- | --- |");
    for r in results {
        if let Some(e) = &r.error {
            let _ = writeln!(
                t,
                "| {} | could not run | {} | | |",
                r.title,
                e.replace('|', "/")
            );
            continue;
        }
        for (i, row) in r.rows.iter().enumerate() {
            let bench = if i == 0 { r.title } else { "" };
            let _ = writeln!(
                t,
                "| {bench} | {} | {} | {} | {} |",
                row.what,
                row.value,
                row.target,
                row.status.text()
            );
        }
    }
    t
}

/// The eBPF programs' ns per run, as Markdown.
pub fn programs_markdown(results: &[BenchResult]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "| benchmark | setup | program | runs | ns per run |");
    let _ = writeln!(t, "| --- | --- | --- | --- | --- |");
    for r in results {
        for (setup, progs) in r.programs() {
            for (name, runs, ns) in progs {
                let _ = writeln!(
                    t,
                    "| {} | {setup} | {name} | {} | {ns:.0} |",
                    r.name,
                    count(runs)
                );
            }
        }
    }
    t
}

/// The table on stdout; `report.md`, `report.json` and `bench.png` in `out`.
pub fn write(out: &Path, results: &[BenchResult], context: &Value) -> anyhow::Result<()> {
    let table = markdown(results);
    let programs = programs_markdown(results);
    let extra = extra_tables(results);
    println!("\n{table}");
    print!("{extra}");
    println!("eBPF programs, with the kernel's run statistics on:\n\n{programs}");
    for r in results {
        for n in &r.notes {
            println!("{}: {n}", r.name);
        }
    }
    let md = out.join("report.md");
    fs::write(
        &md,
        format!(
            "Command: `{}`; kernel {}, {} CPUs ({}), {}.\n\n{table}\n{extra}eBPF programs, with the kernel's run statistics on (one run of each traced setup):\n\n{programs}",
            context["command"].as_str().unwrap_or_default(),
            context["kernel"].as_str().unwrap_or_default(),
            context["cpus"],
            context["cpu"].as_str().unwrap_or_default(),
            rounds_text(context)
        ),
    )
    .with_context(|| format!("cannot write {}", md.display()))?;
    let json_path = out.join("report.json");
    fs::write(
        &json_path,
        serde_json::to_string_pretty(&json!({
            "context": context,
            "benchmarks": results.iter().map(bench_json).collect::<Vec<_>>(),
            "figures": results.iter().flat_map(|r| &r.panels).map(Panel::to_json).collect::<Vec<_>>(),
        }))?,
    )
    .with_context(|| format!("cannot write {}", json_path.display()))?;
    let png = out.join("bench.png");
    let panels: Vec<&Panel> = results.iter().flat_map(|r| &r.panels).collect();
    match super::plot::draw(&png, &panels, context) {
        Ok(()) => eprintln!(
            "xtask: wrote {}, {} and {}",
            json_path.display(),
            md.display(),
            png.display()
        ),
        Err(e) => eprintln!("xtask: the plot could not be drawn: {e:#}"),
    }
    Ok(())
}

/// `5 rounds`, or `2 rounds (1 for scale)` when `scale` ran with other rounds.
pub fn rounds_text(context: &Value) -> String {
    let rounds = &context["rounds"];
    let only: Vec<&str> = context["only"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let scale_ran = only.is_empty() || only.contains(&"scale");
    let n = |r: u64| format!("{r} round{}", if r == 1 { "" } else { "s" });
    match (rounds.as_u64(), context["scale_rounds"].as_u64()) {
        (_, Some(s)) if only == ["scale"] => n(s),
        (Some(r), Some(s)) if scale_ran && s != r => format!("{} ({s} for scale)", n(r)),
        (Some(r), _) => n(r),
        _ => format!("{rounds} rounds"),
    }
}

/// The benchmarks' own tables, each under its benchmark's title.
fn extra_tables(results: &[BenchResult]) -> String {
    let mut t = String::new();
    for r in results {
        for table in &r.tables {
            let _ = writeln!(t, "{}:\n\n{table}", r.title);
        }
    }
    t
}

fn runs_json(runs: &[RunRecord]) -> Vec<Value> {
    runs.iter()
        .map(|r| {
            json!({
                "setup": r.setup,
                "round": r.round,
                "values": r.values.iter().filter(|(_, v)| v.is_finite()).map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect()
}

fn bench_json(r: &BenchResult) -> Value {
    json!({
        "name": r.name,
        "title": r.title,
        "error": r.error,
        "setups": r.setups,
        "rows": r.rows.iter().map(|row| json!({
            "figure": row.what,
            "value": row.value,
            "target": row.target,
            "status": match &row.status {
                Status::Met => "met".to_owned(),
                Status::Missed(_) => "missed".to_owned(),
                Status::Info => "info".to_owned(),
            },
            "by": match &row.status { Status::Missed(by) => Some(by.clone()), _ => None },
        })).collect::<Vec<_>>(),
        "runs": runs_json(&r.runs),
        "bpf_run_statistics": r.programs().into_iter().map(|(setup, progs)| json!({
            "setup": setup,
            "programs": progs.into_iter().map(|(name, runs, ns)| json!({"program": name, "runs": runs, "ns_per_run": ns})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "notes": r.notes,
        "data": r.data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_for_people() {
        assert_eq!(count(1_234_567.0), "1.23M");
        assert_eq!(count(45_600.0), "46k");
        assert_eq!(count(1_500.0), "1.5k");
        assert_eq!(count(12.0), "12");
        assert_eq!(count(f64::NAN), "n/a");
    }

    #[test]
    fn the_rounds_said_are_those_of_what_ran() {
        let ctx = |only: Value| json!({"rounds": 2, "scale_rounds": 1, "only": only});
        assert_eq!(rounds_text(&ctx(json!(["scale"]))), "1 round");
        assert_eq!(rounds_text(&ctx(json!([]))), "2 rounds (1 for scale)");
        assert_eq!(rounds_text(&ctx(json!(["exec"]))), "2 rounds");
        assert_eq!(rounds_text(&json!({"rounds": 5})), "5 rounds");
    }

    #[test]
    fn targets_say_by_how_much_they_are_missed() {
        let r = Row::at_least_count("x", 900_000.0, 1_000_000.0);
        assert!(matches!(r.status, Status::Missed(ref by) if by == "by 100k/s (90 % of it)"));
        assert!(matches!(
            Row::at_least("y", 0.97, 0.95, 2, "").status,
            Status::Met
        ));
    }
}
