//! The plot of a 2-D Neyman construction: grid cells shaded by the Neyman regions, the cells
//! whose membership the toys' finite statistics leave open (the band between the regions with
//! the low and the high critical values), the Neyman contours (solid) beside the asymptotic
//! ones (dashed), the best fit, and the excluded grid points (grey: the model is not a
//! density there).

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::write_png_and_svg;
use crate::error::{Error, Result};
use crate::infer::region::NeymanRegionOutput;
use crate::report::OutputSet;

/// Draws `result` (two POIs on a product grid) as `stem.png` and `stem.svg`.
pub fn neyman_2d(
    outputs: &mut OutputSet,
    stem: &Path,
    result: &NeymanRegionOutput,
) -> Result<Vec<PathBuf>> {
    let Some([xs, ys]) = result.axes.as_deref() else {
        return Err(Error::Analysis(format!(
            "a region plot needs two POIs on a product grid (--grid X=… --grid Y=…); this \
             construction has {} POI(s){}",
            result.pois.len(),
            if result.axes.is_none() {
                " on a list of points"
            } else {
                ""
            }
        )));
    };
    let step = |axis: &[f64]| match axis {
        [a, b, ..] => b - a,
        _ => 1.0,
    };
    let steps = (step(xs), step(ys));
    write_png_and_svg(
        outputs,
        stem,
        |tmp| {
            draw(
                BitMapBackend::new(tmp, (800, 700)).into_drawing_area(),
                result,
                steps,
            )
        },
        |tmp| {
            draw(
                SVGBackend::new(tmp, (800, 700)).into_drawing_area(),
                result,
                steps,
            )
        },
    )
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    result: &NeymanRegionOutput,
    steps: (f64, f64),
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (hx, hy) = (0.5 * steps.0, 0.5 * steps.1);
    let extent = |k: usize| {
        let values = result.points.iter().map(|p| p[k]);
        let lo = values.clone().fold(f64::INFINITY, f64::min);
        (lo, values.fold(f64::NEG_INFINITY, f64::max))
    };
    let ((x0, x1), (y0, y1)) = (extent(0), extent(1));
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x0 - hx..x1 + hx, y0 - hy..y1 + hy)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(result.pois[0].as_str())
        .y_desc(result.pois[1].as_str())
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| e.to_string())?;
    let cell = |p: &[f64]| [(p[0] - hx, p[1] - hy), (p[0] + hx, p[1] + hy)];
    let shades = [RGBColor(170, 200, 250), RGBColor(220, 232, 252)];
    chart
        .draw_series(result.points.iter().enumerate().filter_map(|(g, p)| {
            let region = result.regions.iter().position(|r| r.accepted[g])?;
            Some(Rectangle::new(cell(p), shades[region.min(1)].filled()))
        }))
        .map_err(|e| e.to_string())?;
    if !result.excluded_points.is_empty() {
        let grey = RGBColor(190, 190, 190);
        let excluded = result.excluded_points.iter();
        chart
            .draw_series(excluded.map(|e| Rectangle::new(cell(&e.point), grey.filled())))
            .map_err(|e| e.to_string())?
            .label("excluded: the model is not a density")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], grey.filled()));
    }
    let band = RGBColor(250, 170, 60).mix(0.5);
    let open = |g: usize| {
        result
            .regions
            .iter()
            .any(|r| r.accepted_wide[g] && !r.accepted_narrow[g])
    };
    chart
        .draw_series(
            result
                .points
                .iter()
                .enumerate()
                .filter(|&(g, _)| open(g))
                .map(|(_, p)| Rectangle::new(cell(p), band.filled())),
        )
        .map_err(|e| e.to_string())?
        .label("toy statistics band (critical value ±1σ of rank)")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], band.filled()));
    let colours = [
        RGBColor(20, 50, 170),
        RGBColor(200, 40, 40),
        RGBColor(20, 140, 60),
    ];
    for (i, region) in result.regions.iter().enumerate() {
        let style = colours[i % colours.len()].stroke_width(2);
        let lines = region.contour.iter().flat_map(|c| &c.polylines);
        chart
            .draw_series(lines.map(|l| {
                PathElement::new(l.iter().map(|p| (p[0], p[1])).collect::<Vec<_>>(), style)
            }))
            .map_err(|e| e.to_string())?
            .label(format!("{} % Neyman region", region.cl))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    for (i, region) in result.asymptotic_regions.iter().enumerate() {
        let style = colours[i % colours.len()].stroke_width(2);
        let lines = region.contour.iter().flat_map(|c| &c.polylines);
        for line in lines {
            let points = line.iter().map(|p| (p[0], p[1]));
            chart
                .draw_series(DashedLineSeries::new(points, 8, 5, style))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())
            .map_err(|e| e.to_string())?
            .label(format!(
                "{} % asymptotic (t ≤ {:.2})",
                region.cl, region.threshold
            ))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 8, y)], style));
    }
    let best = (result.best_fit[0], result.best_fit[1]);
    super::best_fit_and_legend(&mut chart, best, 15)?;
    root.present().map_err(|e| e.to_string())
}
