//! Figures of the ratio diagnostics: reliability curves and reweighting-closure histograms.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::write_png_and_svg;
use crate::diagnostics::calibration::ReliabilityCurve;
use crate::diagnostics::closure::ClosureTest;
use crate::error::Result;
use crate::report::OutputSet;

type Drawn = std::result::Result<(), String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Reliability curve of an ensemble (points with errors) and its members (thin lines) against
/// the diagonal, with the pulls per bin below; `stem.png` and `stem.svg`.
pub fn reliability(
    outputs: &mut OutputSet,
    stem: &Path,
    title: &str,
    ensemble: &ReliabilityCurve,
    members: &[ReliabilityCurve],
) -> Result<Vec<PathBuf>> {
    let size = (720, 820);
    write_png_and_svg(
        outputs,
        stem,
        |tmp| {
            draw_reliability(
                BitMapBackend::new(tmp, size).into_drawing_area(),
                title,
                ensemble,
                members,
            )
        },
        |tmp| {
            draw_reliability(
                SVGBackend::new(tmp, size).into_drawing_area(),
                title,
                ensemble,
                members,
            )
        },
    )
}

fn draw_reliability<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    ensemble: &ReliabilityCurve,
    members: &[ReliabilityCurve],
) -> Drawn
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(560);
    let caption = format!(
        "{title}: ECE {:.4}, χ²/ndf {:.1}/{} (p {:.2e})",
        ensemble.ece, ensemble.chi2, ensemble.ndf, ensemble.p_value
    );
    // The range of s the model predicts (narrow for a weak classifier), on both axes.
    let (lo, hi) = match (ensemble.bins.first(), ensemble.bins.last()) {
        (Some(first), Some(last)) => (first.low, last.high),
        _ => (0.0, 1.0),
    };
    let pad = 0.03 * (hi - lo);
    let (lo, hi) = ((lo - pad).max(0.0), (hi + pad).min(1.0));
    let mut chart = ChartBuilder::on(&top)
        .caption(caption, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi, lo..hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .y_desc("observed fraction of numerator-class events")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(DashedLineSeries::new(
            [(lo, lo), (hi, hi)],
            6,
            4,
            BLACK.mix(0.6).stroke_width(1),
        ))
        .map_err(err)?
        .label("perfect calibration")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.6)));
    let member_colour = RGBColor(230, 140, 40);
    for (k, curve) in members.iter().enumerate() {
        let points: Vec<(f64, f64)> = curve
            .bins
            .iter()
            .filter(|b| b.weight > 0.0)
            .map(|b| (b.mean_predicted, b.observed))
            .collect();
        let series = chart
            .draw_series(LineSeries::new(points, member_colour.mix(0.6)))
            .map_err(err)?;
        if k == 0 {
            series
                .label("ensemble members")
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], member_colour));
        }
    }
    let points: Vec<_> = ensemble.bins.iter().filter(|b| b.weight > 0.0).collect();
    chart
        .draw_series(points.iter().map(|b| {
            PathElement::new(
                [
                    (b.mean_predicted, b.observed - b.error),
                    (b.mean_predicted, b.observed + b.error),
                ],
                BLUE.stroke_width(2),
            )
        }))
        .map_err(err)?;
    chart
        .draw_series(
            points
                .iter()
                .map(|b| Circle::new((b.mean_predicted, b.observed), 3, BLUE.filled())),
        )
        .map_err(err)?
        .label("ensemble (sum-of-w² errors)")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, BLUE.filled()));
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;

    let pulls: Vec<(f64, f64)> = ensemble
        .bins
        .iter()
        .filter_map(|b| b.pull.map(|p| (b.mean_predicted, p)))
        .collect();
    let span = pulls
        .iter()
        .map(|(_, p)| p.abs())
        .fold(4.0f64, f64::max)
        .min(50.0)
        * 1.1;
    let mut lower = ChartBuilder::on(&bottom)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi, -span..span)
        .map_err(err)?;
    lower
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc("mean predicted probability s = r/(1+r)")
        .y_desc("pull")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    for level in [-3.0, 0.0, 3.0] {
        lower
            .draw_series(LineSeries::new(
                [(lo, level), (hi, level)],
                BLACK.mix(if level == 0.0 { 0.6 } else { 0.3 }),
            ))
            .map_err(err)?;
    }
    lower
        .draw_series(
            pulls
                .iter()
                .map(|&(x, p)| Circle::new((x, p.clamp(-span, span)), 4, BLUE.filled())),
        )
        .map_err(err)?;
    root.present().map_err(err)
}

/// One closure test: per feature, target and reweighted histograms with their statistical bands
/// above, reweighted/target below; `stem.png` and `stem.svg`.
pub fn closure(outputs: &mut OutputSet, stem: &Path, test: &ClosureTest) -> Result<Vec<PathBuf>> {
    let size = (460 * test.features.len().max(1) as u32, 640);
    write_png_and_svg(
        outputs,
        stem,
        |tmp| draw_closure(BitMapBackend::new(tmp, size).into_drawing_area(), test),
        |tmp| draw_closure(SVGBackend::new(tmp, size).into_drawing_area(), test),
    )
}

fn draw_closure<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, test: &ClosureTest) -> Drawn
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(&test.name, ("sans-serif", 20)).map_err(err)?;
    let panels = root.split_evenly((1, test.features.len().max(1)));
    for (panel, feature) in panels.iter().zip(&test.features) {
        let h = &feature.histogram;
        let bins = h.target.len();
        if bins == 0 {
            continue;
        }
        let (top, bottom) = panel.split_vertically(400);
        let (x0, x1) = (h.edges[0], h.edges[bins]);
        let high = (0..bins)
            .map(|b| (h.target[b] + h.target_error[b]).max(h.reweighted[b] + h.reweighted_error[b]))
            .fold(0.0f64, f64::max)
            * 1.15;
        let low = (0..bins)
            .map(|b| (h.target[b] - h.target_error[b]).min(h.reweighted[b] - h.reweighted_error[b]))
            .fold(0.0f64, f64::min);
        let caption = format!(
            "{}: χ²/ndf {:.1}/{}, p {:.2e}",
            feature.feature, feature.chi2, feature.ndf, feature.p_value
        );
        let mut chart = ChartBuilder::on(&top)
            .caption(caption, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(20)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, low..high.max(1e-300))
            .map_err(err)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .light_line_style(TRANSPARENT)
            .y_desc("weighted events per bin")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        let red = RGBColor(200, 30, 30);
        chart
            .draw_series((0..bins).map(|b| {
                Rectangle::new(
                    [
                        (h.edges[b], h.reweighted[b] - h.reweighted_error[b]),
                        (h.edges[b + 1], h.reweighted[b] + h.reweighted_error[b]),
                    ],
                    red.mix(0.25).filled(),
                )
            }))
            .map_err(err)?
            .label("reweighted ± stat.")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], red.mix(0.4).filled())
            });
        chart
            .draw_series(LineSeries::new(
                steps(&h.edges, &h.reweighted),
                red.stroke_width(2),
            ))
            .map_err(err)?;
        let centre = |b: usize| 0.5 * (h.edges[b] + h.edges[b + 1]);
        chart
            .draw_series((0..bins).map(|b| {
                PathElement::new(
                    [
                        (centre(b), h.target[b] - h.target_error[b]),
                        (centre(b), h.target[b] + h.target_error[b]),
                    ],
                    BLACK.stroke_width(1),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(
                (0..bins).map(|b| Circle::new((centre(b), h.target[b]), 3, BLACK.filled())),
            )
            .map_err(err)?
            .label("target ± stat.")
            .legend(|(x, y)| Circle::new((x + 10, y), 3, BLACK.filled()));
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 12))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;

        // reweighted / target, with the error of the difference relative to the target.
        let ratio: Vec<(f64, f64, f64)> = (0..bins)
            .filter(|&b| h.target[b] != 0.0)
            .map(|b| {
                let x = 0.5 * (h.edges[b] + h.edges[b + 1]);
                (
                    x,
                    h.reweighted[b] / h.target[b],
                    h.difference_error[b] / h.target[b].abs(),
                )
            })
            .collect();
        let span = ratio
            .iter()
            .map(|(_, r, e)| (r - 1.0).abs() + e)
            .fold(0.05f64, f64::max)
            .min(1.0)
            * 1.1;
        let mut lower = ChartBuilder::on(&bottom)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, (1.0 - span)..(1.0 + span))
            .map_err(err)?;
        lower
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .light_line_style(TRANSPARENT)
            .x_desc(feature.feature.as_str())
            .y_desc("reweighted / target")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        lower
            .draw_series(LineSeries::new([(x0, 1.0), (x1, 1.0)], BLACK.mix(0.5)))
            .map_err(err)?;
        lower
            .draw_series(
                ratio.iter().map(|&(x, r, e)| {
                    PathElement::new([(x, r - e), (x, r + e)], red.stroke_width(1))
                }),
            )
            .map_err(err)?;
        lower
            .draw_series(
                ratio
                    .iter()
                    .map(|&(x, r, _)| Circle::new((x, r), 3, red.filled())),
            )
            .map_err(err)?;
    }
    root.present().map_err(err)
}

/// The outline of a histogram as a polyline.
fn steps(edges: &[f64], contents: &[f64]) -> Vec<(f64, f64)> {
    let mut points = Vec::with_capacity(2 * contents.len());
    for (b, &c) in contents.iter().enumerate() {
        points.push((edges[b], c));
        points.push((edges[b + 1], c));
    }
    points
}
