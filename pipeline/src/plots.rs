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
    draw(path, title, x_desc, y_desc, curves)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot draw {}", path.display()))
}

fn draw(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    curves: &[Curve],
) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
    let root = SVGBackend::new(path, (520, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
    chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw()?;
    chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))?;
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
}
