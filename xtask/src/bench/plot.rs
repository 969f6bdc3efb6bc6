//! `bench.png`: the main figures as bar charts, one panel per figure (lines on log-log
//! axes for a figure that varies with a count, as `scale`'s), drawn with plotters'
//! bitmap backend. Text uses DejaVu Sans from the system (Debian's
//! `fonts-dejavu-core`, installed when missing), read at run time.

use std::{path::Path, process::Command};

use anyhow::{Context as _, anyhow, bail};
use plotters::{
    coord::ranged1d::SegmentValue,
    prelude::*,
    style::{
        FontStyle, register_font,
        text_anchor::{HPos, Pos, VPos},
    },
};

use super::report::{Panel, count};

const FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

const COLOURS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// Registers DejaVu Sans as plotters' "sans-serif".
fn font() -> anyhow::Result<()> {
    let find = || FONTS.iter().find(|p| Path::new(p).is_file());
    if find().is_none() {
        eprintln!("xtask: installing fonts-dejavu-core for the plot (apt-get install -y)");
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "fonts-dejavu-core"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    let path = find().context("no DejaVu Sans font (fonts-dejavu-core)")?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
    // The font lives as long as the process, as plotters wants.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{path} is not a font plotters can read"))
}

pub fn draw(path: &Path, panels: &[&Panel], context: &serde_json::Value) -> anyhow::Result<()> {
    if panels.is_empty() {
        bail!("no figure to draw");
    }
    font()?;
    let cols = if panels.len() > 4 { 3 } else { 2 }.min(panels.len());
    let rows = panels.len().div_ceil(cols);
    let (w, h) = (cols as u32 * 620, rows as u32 * 400 + 50);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let (head, body) = root.split_vertically(50);
    let style = ("sans-serif", 16).into_font().color(&BLACK);
    head.draw_text(
        &format!(
            "tracer benchmarks: medians of {}; kernel {}, {} CPUs",
            super::report::rounds_text(context),
            context["kernel"].as_str().unwrap_or_default(),
            context["cpus"],
        ),
        &style,
        (16, 6),
    )
    .map_err(|e| anyhow!("{e}"))?;
    head.draw_text(
        context["command"].as_str().unwrap_or_default(),
        &style,
        (16, 28),
    )
    .map_err(|e| anyhow!("{e}"))?;
    for (area, p) in body.split_evenly((rows, cols)).iter().zip(panels) {
        let drawn = if p.series.is_empty() {
            panel(area, p)
        } else {
            lines(area, p)
        };
        drawn.map_err(|e| anyhow!("panel `{}`: {e}", p.title))?;
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn shown(x: f64, unit: &str) -> String {
    match unit {
        "ratio" => format!("{x:.2}"),
        "ns" if x.abs() < 10.0 => format!("{x:.1}"),
        "ns" => format!("{x:.0}"),
        "MiB" => format!("{x:.1}"),
        _ => count(x),
    }
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    p: &Panel,
) -> Result<(), Box<dyn std::error::Error>> {
    let values: Vec<f64> = p
        .bars
        .iter()
        .map(|(_, v)| if v.is_finite() { *v } else { 0.0 })
        .collect();
    let hi = values
        .iter()
        .copied()
        .chain(p.target.as_ref().map(|(t, _)| *t))
        .fold(0.0f64, f64::max);
    let top = p.max.unwrap_or(hi * 1.2).max(hi * 1.05).max(1e-9);
    let lo = values.iter().copied().fold(0.0f64, f64::min) * 1.2;
    let n = p.bars.len() as i32;
    let labels: Vec<String> = p.bars.iter().map(|(l, _)| l.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        // A segmented range of 0..=k has k + 1 segments.
        .build_cartesian_2d((0..(n - 1).max(0)).into_segmented(), lo..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        // Only the labelled lines: a lighter image (it is committed).
        .light_line_style(TRANSPARENT)
        .y_desc(p.unit.as_str())
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => labels
                .get(usize::try_from(*i).unwrap_or(usize::MAX))
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|y| shown(*y, &p.unit))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()?;
    chart.draw_series(values.iter().enumerate().map(|(i, v)| {
        let i = i as i32;
        let colour = COLOURS[i as usize % COLOURS.len()];
        let mut r = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), *v),
            ],
            colour.filled(),
        );
        r.set_margin(0, 0, 18, 18);
        r
    }))?;
    chart.draw_series(values.iter().enumerate().map(|(i, v)| {
        Text::new(
            shown(*v, &p.unit),
            (SegmentValue::CenterOf(i as i32), *v),
            ("sans-serif", 14)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom)),
        )
    }))?;
    if let Some((t, label)) = &p.target {
        let red = RGBColor(0xd6, 0x27, 0x28);
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(SegmentValue::Exact(0), *t), (SegmentValue::Exact(n), *t)],
            red.stroke_width(2),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            label.clone(),
            (SegmentValue::Exact(0), *t),
            ("sans-serif", 13)
                .into_font()
                .color(&red)
                .pos(Pos::new(HPos::Left, VPos::Bottom)),
        )))?;
    }
    Ok(())
}

/// A panel of lines on log-log axes: each series' points joined, labelled in a legend.
/// Points that a logarithmic axis cannot show (zero, negative, not a number) are left out.
fn lines(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    p: &Panel,
) -> Result<(), Box<dyn std::error::Error>> {
    let shown_points = |pts: &[(f64, f64)]| -> Vec<(f64, f64)> {
        pts.iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite() && *x > 0.0 && *y > 0.0)
            .collect()
    };
    let series: Vec<(&str, Vec<(f64, f64)>)> = p
        .series
        .iter()
        .map(|(l, pts)| (l.as_str(), shown_points(pts)))
        .collect();
    let all = || series.iter().flat_map(|(_, pts)| pts.iter().copied());
    let (x_lo, x_hi) = all().fold((f64::INFINITY, 0.0f64), |(lo, hi), (x, _)| {
        (lo.min(x), hi.max(x))
    });
    let (y_lo, y_hi) = all()
        .map(|(_, y)| y)
        .chain(p.target.as_ref().map(|(t, _)| *t))
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), y| {
            (lo.min(y), hi.max(y))
        });
    if !x_lo.is_finite() || !y_lo.is_finite() {
        return Err("no point to draw".into());
    }
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (x_lo / 1.3..x_hi * 1.3).log_scale(),
            // Room above the lines for the legend.
            (y_lo / 2.0..y_hi * 300.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc(p.x_unit.as_str())
        .y_desc(p.unit.as_str())
        .x_label_formatter(&|x| count(*x))
        .y_label_formatter(&|y| shown(*y, &p.unit))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()?;
    for (i, (label, pts)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(std::iter::once(PathElement::new(
                pts.clone(),
                colour.stroke_width(2),
            )))?
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
            });
        chart.draw_series(pts.iter().map(|pt| Circle::new(*pt, 3, colour.filled())))?;
    }
    if let Some((t, label)) = &p.target {
        let red = RGBColor(0xd6, 0x27, 0x28);
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x_lo / 1.3, *t), (x_hi * 1.3, *t)],
            red.stroke_width(2),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            label.clone(),
            (x_hi, *t),
            ("sans-serif", 13)
                .into_font()
                .color(&red)
                .pos(Pos::new(HPos::Right, VPos::Bottom)),
        )))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 11))
        .draw()?;
    Ok(())
}
