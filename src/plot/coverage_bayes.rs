//! The plots of `nsbi coverage-bayes`: the TARP expected coverage against credibility level
//! with its bootstrap bands, and the SBC rank histograms of every parameter.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::write_png_and_svg;
use crate::bayes::coverage::{CoverageBayesResult, SbcParameter};
use crate::error::Result;
use crate::report::OutputSet;

type Drawn = std::result::Result<(), String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

const CURVE: RGBColor = RGBColor(20, 50, 170);
const BAND: RGBColor = RGBColor(40, 80, 170);
const BARS: RGBColor = RGBColor(110, 140, 210);

/// `stem.png` and `stem.svg`: ECP against α, the ±1σ and ±2σ bootstrap bands around the
/// bootstrap mean, and the diagonal of a calibrated posterior.
pub fn tarp(
    outputs: &mut OutputSet,
    stem: &Path,
    result: &CoverageBayesResult,
) -> Result<Vec<PathBuf>> {
    write_png_and_svg(
        outputs,
        stem,
        |tmp| {
            draw_tarp(
                BitMapBackend::new(tmp, (700, 650)).into_drawing_area(),
                result,
            )
        },
        |tmp| draw_tarp(SVGBackend::new(tmp, (700, 650)).into_drawing_area(), result),
    )
}

fn draw_tarp<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, r: &CoverageBayesResult) -> Drawn
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let t = &r.tarp;
    let caption = format!(
        "TARP, {} pairs: KS D = {:.3}, p = {:.2e} ({})",
        r.run.pairs,
        t.ks_distance,
        t.p_value,
        if t.pass { "pass" } else { "fail" }
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("credibility level α")
        .y_desc("expected coverage probability")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    for (k, opacity) in [(2.0, 0.15), (1.0, 0.3)] {
        let upper = t
            .alpha
            .iter()
            .zip(t.ecp_bootstrap_mean.iter().zip(&t.ecp_bootstrap_sd))
            .map(|(&a, (&m, &s))| (a, (m + k * s).min(1.0)));
        let lower = t
            .alpha
            .iter()
            .zip(t.ecp_bootstrap_mean.iter().zip(&t.ecp_bootstrap_sd))
            .map(|(&a, (&m, &s))| (a, (m - k * s).max(0.0)))
            .rev();
        let outline: Vec<(f64, f64)> = upper.chain(lower).collect();
        chart
            .draw_series(std::iter::once(Polygon::new(outline, BAND.mix(opacity))))
            .map_err(err)?
            .label(format!("bootstrap ±{k}σ"))
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], BAND.mix(opacity).filled())
            });
    }
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            6,
            4,
            BLACK.stroke_width(1),
        ))
        .map_err(err)?
        .label("calibrated")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
    let style = CURVE.stroke_width(2);
    chart
        .draw_series(LineSeries::new(
            t.alpha.iter().copied().zip(t.ecp.iter().copied()),
            style,
        ))
        .map_err(err)?
        .label("ECP")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// `stem.png` and `stem.svg`: one rank histogram per parameter, with the expected count (line)
/// and its central 99 % band (grey) behind the bars.
pub fn sbc(
    outputs: &mut OutputSet,
    stem: &Path,
    result: &CoverageBayesResult,
) -> Result<Vec<PathBuf>> {
    let n = result.sbc.parameters.len() as u32;
    let columns = n.clamp(1, 3);
    let rows = n.div_ceil(columns);
    let size = (360 * columns, 300 * rows);
    write_png_and_svg(
        outputs,
        stem,
        |tmp| draw_sbc(BitMapBackend::new(tmp, size).into_drawing_area(), result),
        |tmp| draw_sbc(SVGBackend::new(tmp, size).into_drawing_area(), result),
    )
}

fn draw_sbc<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, r: &CoverageBayesResult) -> Drawn
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let n = r.sbc.parameters.len();
    let columns = n.clamp(1, 3);
    let panels = root.split_evenly((n.div_ceil(columns), columns));
    for (parameter, panel) in r.sbc.parameters.iter().zip(&panels) {
        draw_histogram(panel, parameter, r)?;
    }
    root.present().map_err(err)
}

fn draw_histogram<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    p: &SbcParameter,
    r: &CoverageBayesResult,
) -> Drawn
where
    DB::ErrorType: 'static,
{
    let ranks = (r.sbc.draws + 1) as f64;
    let width = ranks / r.sbc.bins as f64;
    let [low, high] = r.sbc.band_99;
    let top = p.histogram.iter().copied().max().unwrap_or(0).max(high) as f64 * 1.15;
    let caption = format!(
        "{}: χ² = {:.1}/{}, p = {:.2e}",
        p.name, p.chi2, p.ndf, p.p_value
    );
    let mut chart = ChartBuilder::on(panel)
        .caption(caption, ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..ranks, 0.0..top.max(1.0))
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("rank of θ*")
        .y_desc("pairs")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(0.0, low as f64), (ranks, high as f64)],
            BLACK.mix(0.12).filled(),
        )))
        .map_err(err)?;
    chart
        .draw_series(p.histogram.iter().enumerate().map(|(k, &c)| {
            let x0 = k as f64 * width;
            Rectangle::new([(x0, 0.0), (x0 + width, c as f64)], BARS.filled())
        }))
        .map_err(err)?;
    let expected = r.run.pairs as f64 / r.sbc.bins as f64;
    chart
        .draw_series(LineSeries::new(
            [(0.0, expected), (ranks, expected)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
    Ok(())
}
