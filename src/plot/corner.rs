//! The corner plot of posterior draws: the 1-D marginal of each parameter on the diagonal
//! (histogram), every 2-D marginal below it (2-D histogram, shaded by the density of draws),
//! optionally with reference values (the truth of a toy) marked.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::write_png_and_svg;
use crate::bayes::Samples;
use crate::error::{Error, Result};
use crate::report::OutputSet;

/// Panel edge in pixels.
const PANEL: u32 = 260;
const BINS_1D: usize = 40;
const BINS_2D: usize = 30;
/// Each axis spans the central 99.5 % of the draws, widened by 5 % on both sides.
const TAIL: f64 = 0.0025;

/// The corner plot of `samples`, staged as `stem.png` and `stem.svg`. `names` label the axes;
/// `reference` (one value per parameter) is drawn as lines and points.
pub fn corner(
    outputs: &mut OutputSet,
    stem: &Path,
    names: &[String],
    samples: &Samples,
    reference: Option<&[f64]>,
) -> Result<Vec<PathBuf>> {
    if names.len() != samples.dim || reference.is_some_and(|r| r.len() != samples.dim) {
        return Err(Error::Analysis(format!(
            "corner plot {}: {} names and {} reference values for {} parameters",
            stem.display(),
            names.len(),
            reference.map_or(0, <[f64]>::len),
            samples.dim
        )));
    }
    let columns: Vec<Vec<f64>> = (0..samples.dim)
        .map(|i| samples.parameter(i).concat())
        .collect();
    if let Some((i, _)) = columns
        .iter()
        .enumerate()
        .find(|(_, c)| c.iter().any(|v| !v.is_finite()))
    {
        return Err(Error::Analysis(format!(
            "corner plot {}: parameter {} has non-finite draws",
            stem.display(),
            names[i]
        )));
    }
    let ranges: Vec<(f64, f64)> = columns.iter().map(|c| axis_range(c)).collect();
    let figure = Figure {
        names,
        columns: &columns,
        ranges: &ranges,
        reference,
    };
    let side = PANEL * samples.dim as u32;
    write_png_and_svg(
        outputs,
        stem,
        |tmp| figure.draw(BitMapBackend::new(tmp, (side, side)).into_drawing_area()),
        |tmp| figure.draw(SVGBackend::new(tmp, (side, side)).into_drawing_area()),
    )
}

/// The central 1 − 2·TAIL of the draws, widened by 5 %; a constant gets a unit-width axis.
fn axis_range(draws: &[f64]) -> (f64, f64) {
    let mut sorted = draws.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    let (low, high) = (at(TAIL), at(1.0 - TAIL));
    let pad = 0.05 * (high - low);
    if pad > 0.0 {
        (low - pad, high + pad)
    } else {
        (low - 0.5, high + 0.5)
    }
}

/// Counts of `draws` in `bins` equal bins over `range` (draws outside are not counted).
fn bin_index(value: f64, (low, high): (f64, f64), bins: usize) -> Option<usize> {
    let k = ((value - low) / (high - low) * bins as f64).floor();
    (k >= 0.0 && k < bins as f64).then_some(k as usize)
}

struct Figure<'a> {
    names: &'a [String],
    columns: &'a [Vec<f64>],
    ranges: &'a [(f64, f64)],
    reference: Option<&'a [f64]>,
}

type Drawn = std::result::Result<(), String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

const FILL: RGBColor = RGBColor(40, 80, 170);
const TRUTH: RGBColor = RGBColor(200, 40, 40);

impl Figure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Drawn
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let dim = self.columns.len();
        let panels = root.split_evenly((dim, dim));
        for (k, panel) in panels.iter().enumerate() {
            let (row, col) = (k / dim, k % dim);
            match row.cmp(&col) {
                std::cmp::Ordering::Equal => self.marginal(panel, row)?,
                std::cmp::Ordering::Greater => self.joint(panel, col, row)?,
                std::cmp::Ordering::Less => {}
            }
        }
        root.present().map_err(err)
    }

    /// Axis labels only on the outer panels, as corner plots have them.
    fn builder<'b, DB: DrawingBackend>(
        &self,
        panel: &'b DrawingArea<DB, Shift>,
        row: usize,
        col: usize,
    ) -> ChartBuilder<'b, 'b, DB> {
        let dim = self.columns.len();
        let mut b = ChartBuilder::on(panel);
        b.margin(6)
            .x_label_area_size(if row == dim - 1 { 40 } else { 0 })
            .y_label_area_size(if col == 0 { 50 } else { 0 });
        b
    }

    fn marginal<DB: DrawingBackend>(&self, panel: &DrawingArea<DB, Shift>, i: usize) -> Drawn
    where
        DB::ErrorType: 'static,
    {
        let range = self.ranges[i];
        let mut counts = vec![0usize; BINS_1D];
        for &v in &self.columns[i] {
            if let Some(k) = bin_index(v, range, BINS_1D) {
                counts[k] += 1;
            }
        }
        let top = *counts.iter().max().unwrap_or(&1) as f64 * 1.1;
        let width = (range.1 - range.0) / BINS_1D as f64;
        let mut chart = self
            .builder(panel, i, i)
            .build_cartesian_2d(range.0..range.1, 0.0..top.max(1.0))
            .map_err(err)?;
        let mut mesh = chart.configure_mesh();
        mesh.disable_mesh()
            .y_labels(0)
            .label_style(("sans-serif", 12));
        if i == self.columns.len() - 1 {
            mesh.x_desc(self.names[i].as_str());
        }
        mesh.draw().map_err(err)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(k, &c)| {
                let x0 = range.0 + k as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, c as f64)], FILL.mix(0.6).filled())
            }))
            .map_err(err)?;
        if let Some(reference) = self.reference {
            let x = reference[i];
            chart
                .draw_series(LineSeries::new([(x, 0.0), (x, top)], TRUTH.stroke_width(2)))
                .map_err(err)?;
        }
        Ok(())
    }

    /// Parameter `i` across, `j` up.
    fn joint<DB: DrawingBackend>(&self, panel: &DrawingArea<DB, Shift>, i: usize, j: usize) -> Drawn
    where
        DB::ErrorType: 'static,
    {
        let (rx, ry) = (self.ranges[i], self.ranges[j]);
        let mut counts = vec![0usize; BINS_2D * BINS_2D];
        for (&x, &y) in self.columns[i].iter().zip(&self.columns[j]) {
            if let (Some(a), Some(b)) = (bin_index(x, rx, BINS_2D), bin_index(y, ry, BINS_2D)) {
                counts[a * BINS_2D + b] += 1;
            }
        }
        let peak = *counts.iter().max().unwrap_or(&1) as f64;
        let (wx, wy) = (
            (rx.1 - rx.0) / BINS_2D as f64,
            (ry.1 - ry.0) / BINS_2D as f64,
        );
        let mut chart = self
            .builder(panel, j, i)
            .build_cartesian_2d(rx.0..rx.1, ry.0..ry.1)
            .map_err(err)?;
        let mut mesh = chart.configure_mesh();
        mesh.disable_mesh().label_style(("sans-serif", 12));
        if j == self.columns.len() - 1 {
            mesh.x_desc(self.names[i].as_str());
        }
        if i == 0 {
            mesh.y_desc(self.names[j].as_str());
        }
        mesh.draw().map_err(err)?;
        chart
            .draw_series(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| c > 0)
                    .map(|(k, &c)| {
                        let (a, b) = (k / BINS_2D, k % BINS_2D);
                        let (x0, y0) = (rx.0 + a as f64 * wx, ry.0 + b as f64 * wy);
                        // Shade by the square root of the count: the tails stay visible.
                        let shade = (c as f64 / peak).sqrt();
                        Rectangle::new(
                            [(x0, y0), (x0 + wx, y0 + wy)],
                            FILL.mix(0.1 + 0.9 * shade).filled(),
                        )
                    }),
            )
            .map_err(err)?;
        if let Some(reference) = self.reference {
            chart
                .draw_series([Circle::new((reference[i], reference[j]), 4, TRUTH.filled())])
                .map_err(err)?;
        }
        Ok(())
    }
}
