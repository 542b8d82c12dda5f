//! The evaluation report's figures, as SVG: ROC curves and reliability
//! (calibration) curves, one line per model.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

/// One model's curve.
#[derive(Clone, Debug)]
pub struct Curve {
    /// The model's name (the legend).
    pub name: String,
    /// Points, in drawing order.
    pub points: Vec<(f64, f64)>,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Draws curves on the unit square with the diagonal as reference: an ROC
/// plot (false vs true positive rate) or a reliability plot (mean predicted
/// vs observed rate per bin).
pub fn unit_square(path: &Path, title: &str, x_desc: &str, y_desc: &str, curves: &[Curve]) -> Result<()> {
    let axes = Axes { title, x_desc, y_desc, x: 0.0..1.0, y: 0.0..1.0, diagonal: true };
    draw(path, &axes, curves)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot draw {}", path.display()))
}

/// Draws curves on axes fitted to their points (from 0): a measured
/// trade-off, e.g. latency against a setting.
pub fn lines(path: &Path, title: &str, x_desc: &str, y_desc: &str, curves: &[Curve]) -> Result<()> {
    let max = |f: fn(&(f64, f64)) -> f64| {
        curves.iter().flat_map(|c| c.points.iter().map(f)).filter(|v| v.is_finite()).fold(0.0, f64::max)
    };
    let (x, y) = (max(|p| p.0), max(|p| p.1));
    let axes =
        Axes { title, x_desc, y_desc, x: 0.0..(x * 1.05).max(1e-9), y: 0.0..(y * 1.1).max(1e-9), diagonal: false };
    draw(path, &axes, curves)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot draw {}", path.display()))
}

struct Axes<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    /// The y = x reference line.
    diagonal: bool,
}

fn draw(path: &Path, axes: &Axes, curves: &[Curve]) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
    let root = SVGBackend::new(path, (520, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(axes.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(axes.x.clone(), axes.y.clone())?;
    chart.configure_mesh().x_desc(axes.x_desc).y_desc(axes.y_desc).draw()?;
    if axes.diagonal {
        chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))?;
    }
    for (i, c) in curves.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(c.points.iter().copied(), color.stroke_width(2)))?
            .label(c.name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        if c.points.len() <= 20 {
            chart.draw_series(c.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_every_model_in_the_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roc.svg");
        let curves = [
            Curve { name: "gbt".into(), points: vec![(0.0, 0.0), (0.1, 0.7), (1.0, 1.0)] },
            Curve { name: "recency".into(), points: vec![(0.0, 0.0), (0.3, 0.6), (1.0, 1.0)] },
        ];
        unit_square(&path, "ROC churn_risk_14d", "false positive rate", "true positive rate", &curves).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("gbt") && svg.contains("recency"));
        assert!(unit_square(&dir.path().join("no/such/dir.svg"), "t", "x", "y", &curves).is_err());
    }

    #[test]
    fn lines_fit_their_axes_to_the_points() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.svg");
        let curves = [Curve { name: "p99".into(), points: vec![(0.0, 0.4), (2.0, 9.5)] }];
        lines(&path, "latency", "linger (s)", "seconds", &curves).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("p99") && svg.contains("linger (s)"));
    }
}
