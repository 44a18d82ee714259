//! Figures (PNG and SVG) with an embedded font, so no system font libraries are needed.

use crate::results::ContourOutput;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

pub mod brazil;
pub mod corner;
pub mod coverage_bayes;
pub mod diagnostics;
pub mod region;

use crate::error::{Error, Result};
use crate::report::OutputSet;

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// A curve: label, points, and whether to draw it dashed.
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// Draws a figure into the file at the given path.
type DrawInto<'a> = dyn FnOnce(&Path) -> std::result::Result<(), String> + 'a;

/// `stem` with `.ext` appended: the stem is kept whole, so `scan_v1.0` and `scan_v1.5` give
/// two files (`Path::with_extension` would replace `.0` and `.5` and write one).
pub fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// Draws one figure twice — `stem.png` and `stem.svg` — each into a temporary file staged in
/// `outputs`, which renames them into place with the command's other outputs.
fn write_png_and_svg(
    outputs: &mut OutputSet,
    stem: &Path,
    png: impl FnOnce(&Path) -> std::result::Result<(), String>,
    svg: impl FnOnce(&Path) -> std::result::Result<(), String>,
) -> Result<Vec<PathBuf>> {
    register_fonts();
    let mut written = Vec::new();
    let draws: [(&str, Box<DrawInto<'_>>); 2] = [("png", Box::new(png)), ("svg", Box::new(svg))];
    for (ext, draw) in draws {
        let path = with_suffix(stem, ext);
        let tmp = outputs.stage(&path)?;
        draw(&tmp).map_err(|e| Error::Analysis(format!("cannot draw {}: {e}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

/// A 1-D scan plot: t against the parameter, with horizontal threshold lines; staged as PNG
/// and SVG next to each other (`stem.png`, `stem.svg`).
pub fn scan_1d(
    outputs: &mut OutputSet,
    stem: &Path,
    x_label: &str,
    curves: &[Curve],
    thresholds: &[(&str, f64)],
) -> Result<Vec<PathBuf>> {
    write_png_and_svg(
        outputs,
        stem,
        |tmp| {
            draw_scan(
                BitMapBackend::new(tmp, (800, 600)).into_drawing_area(),
                x_label,
                curves,
                thresholds,
            )
        },
        |tmp| {
            draw_scan(
                SVGBackend::new(tmp, (800, 600)).into_drawing_area(),
                x_label,
                curves,
                thresholds,
            )
        },
    )
}

fn draw_scan<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    x_label: &str,
    curves: &[Curve],
    thresholds: &[(&str, f64)],
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let all = curves.iter().flat_map(|c| c.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for (x, y) in all {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y1 = y1.max(*y);
    }
    let y1 = y1.clamp(5.0, 25.0) * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(x0..x1, 0.0..y1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("t = 2 ΔNLL")
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| e.to_string())?;
    for (label, level) in thresholds {
        chart
            .draw_series(LineSeries::new(
                [(x0, *level), (x1, *level)],
                BLACK.mix(0.4),
            ))
            .map_err(|e| e.to_string())?
            .label(format!("{label} % (asymptotic)"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));
    }
    let colours = [BLUE, RED, GREEN, MAGENTA];
    for (curve, colour) in curves.iter().zip(colours.iter().cycle()) {
        let style = colour.stroke_width(2);
        let clipped: Vec<(f64, f64)> = curve.points.iter().map(|&(x, y)| (x, y.min(y1))).collect();
        if curve.dashed {
            chart
                .draw_series(DashedLineSeries::new(clipped, 8, 5, style))
                .map_err(|e| e.to_string())?
                .label(curve.label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        } else {
            chart
                .draw_series(LineSeries::new(clipped, style))
                .map_err(|e| e.to_string())?
                .label(curve.label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        }
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperMiddle)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// A 2-D scan: grid cells shaded by the region of t (inside the first contour's threshold,
/// inside a later one, outside), grid points without a likelihood (t NaN) in grey, the
/// contours drawn as lines and the best fit marked; PNG and SVG.
pub fn scan_2d(
    outputs: &mut OutputSet,
    stem: &Path,
    labels: (&str, &str),
    cells: &[(f64, f64, f64)],
    steps: (f64, f64),
    best: (f64, f64),
    contours: &[ContourOutput],
) -> Result<Vec<PathBuf>> {
    write_png_and_svg(
        outputs,
        stem,
        |tmp| {
            draw_2d(
                BitMapBackend::new(tmp, (800, 700)).into_drawing_area(),
                labels,
                cells,
                steps,
                best,
                contours,
            )
        },
        |tmp| {
            draw_2d(
                SVGBackend::new(tmp, (800, 700)).into_drawing_area(),
                labels,
                cells,
                steps,
                best,
                contours,
            )
        },
    )
}

fn draw_2d<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    labels: (&str, &str),
    cells: &[(f64, f64, f64)],
    steps: (f64, f64),
    best: (f64, f64),
    contours: &[ContourOutput],
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (hx, hy) = (0.5 * steps.0, 0.5 * steps.1);
    let x0 = cells.iter().map(|c| c.0).fold(f64::INFINITY, f64::min) - hx;
    let x1 = cells.iter().map(|c| c.0).fold(f64::NEG_INFINITY, f64::max) + hx;
    let y0 = cells.iter().map(|c| c.1).fold(f64::INFINITY, f64::min) - hy;
    let y1 = cells.iter().map(|c| c.1).fold(f64::NEG_INFINITY, f64::max) + hy;
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(labels.0)
        .y_desc(labels.1)
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| e.to_string())?;
    let shades = [RGBColor(170, 200, 250), RGBColor(220, 232, 252)];
    let excluded = RGBColor(190, 190, 190);
    chart
        .draw_series(cells.iter().filter_map(|&(x, y, t)| {
            let colour = if t.is_nan() {
                excluded
            } else {
                let region = contours.iter().position(|c| t <= c.threshold)?;
                shades[region.min(1)]
            };
            Some(Rectangle::new(
                [(x - hx, y - hy), (x + hx, y + hy)],
                colour.filled(),
            ))
        }))
        .map_err(|e| e.to_string())?;
    let lines = [
        RGBColor(20, 50, 170),
        RGBColor(200, 40, 40),
        RGBColor(20, 140, 60),
    ];
    for (i, contour) in contours.iter().enumerate() {
        let style = lines[i % lines.len()].stroke_width(2);
        let polylines = contour
            .polylines
            .iter()
            .map(|l| PathElement::new(l.iter().map(|p| (p[0], p[1])).collect::<Vec<_>>(), style));
        chart
            .draw_series(polylines)
            .map_err(|e| e.to_string())?
            .label(format!(
                "{} % region (asymptotic, t ≤ {:.2})",
                contour.cl, contour.threshold
            ))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    if cells.iter().any(|c| c.2.is_nan()) {
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
            .map_err(|e| e.to_string())?
            .label("no likelihood (density ≤ 0)")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], excluded.filled()));
    }
    best_fit_and_legend(&mut chart, best, 16)?;
    root.present().map_err(|e| e.to_string())
}

/// The best fit's cross on a 2-D chart, then the legend of every labelled series (upper right,
/// font `font_size`).
fn best_fit_and_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    best: (f64, f64),
    font_size: u32,
) -> std::result::Result<(), String> {
    chart
        .draw_series(std::iter::once(Cross::new(best, 8, BLACK.stroke_width(2))))
        .map_err(|e| e.to_string())?
        .label("best fit")
        .legend(|(x, y)| Cross::new((x + 7, y), 6, BLACK.stroke_width(2)));
    chart
        .configure_series_labels()
        .label_font(("sans-serif", font_size))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}
