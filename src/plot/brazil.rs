//! The Brazil-band figure of a CLs upper limit: observed and expected CLs against the tested
//! POI values, the ±1σ (green) and ±2σ (yellow) bands of the expected CLs, the line at 1 − CL,
//! and the observed and expected limits where the curves cross it.

use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::write_png_and_svg;
use crate::error::{Error, Result};
use crate::report::OutputSet;

/// The names of the five expected quantiles, in the order of [`BrazilCurve::expected`].
const QUANTILES: [&str; 5] = ["−2σ", "−1σ", "median", "+1σ", "+2σ"];
const YELLOW_BAND: RGBColor = RGBColor(255, 223, 0);
const GREEN_BAND: RGBColor = RGBColor(0, 200, 0);
const LIMIT_BLUE: RGBColor = RGBColor(30, 80, 200);
const SIZE: (u32, u32) = (800, 600);

/// What the figure shows: CLs observed and expected at each tested value of the POI.
pub struct BrazilCurve<'a> {
    /// The POI's name, the x-axis label.
    pub poi: &'a str,
    /// The confidence level (e.g. 0.95): the line is drawn at CLs = 1 − cl.
    pub cl: f64,
    /// The tested POI values, strictly increasing.
    pub mu: &'a [f64],
    /// The observed CLs at each value of `mu`.
    pub observed: &'a [f64],
    /// The expected CLs at each value of `mu`: −2σ, −1σ, median, +1σ, +2σ.
    pub expected: &'a [[f64; 5]],
    pub observed_limit: Option<f64>,
    /// The expected limits: −2σ, −1σ, median, +1σ, +2σ.
    pub expected_limits: Option<[f64; 5]>,
}

/// The CLs axis. Linear from 0 reads best — it is the usual look, and a CLs curve is a
/// probability falling from 1 — as long as the line at 1 − cl stands clear of the axis; for
/// cl above 97.5 % it would sit within 2.5 % of the axis, where no crossing can be read, so the
/// axis becomes logarithmic, down to the smallest value shown (at most four decades below the
/// line; smaller values, zeros included, are drawn at the bottom edge).
#[derive(Clone, Copy, Debug, PartialEq)]
enum CLsAxis {
    Linear { top: f64 },
    Log { bottom: f64, top: f64 },
}

impl BrazilCurve<'_> {
    /// Refuses what cannot be drawn faithfully, naming the plot, the point and the value.
    fn check(&self, stem: &Path) -> Result<()> {
        let refuse = |what: String| {
            Err(Error::Analysis(format!(
                "Brazil plot {}: {what}",
                stem.display()
            )))
        };
        let (n, poi) = (self.mu.len(), self.poi);
        if !(self.cl > 0.0 && self.cl < 1.0) {
            return refuse(format!(
                "cl = {}; a confidence level lies strictly between 0 and 1",
                self.cl
            ));
        }
        if n < 2 {
            return refuse(format!(
                "{n} tested value(s) of {poi}; the curves need at least 2"
            ));
        }
        for (what, len) in [
            ("observed CLs values", self.observed.len()),
            ("expected CLs bands", self.expected.len()),
        ] {
            if len != n {
                return refuse(format!(
                    "{len} {what} for {n} tested values of {poi}; one per value expected"
                ));
            }
        }
        for (i, pair) in self.mu.windows(2).enumerate() {
            if !(pair[0].is_finite() && pair[1].is_finite() && pair[0] < pair[1]) {
                return refuse(format!(
                    "the tested values of {poi} must be finite and increasing: point {} of {n} \
                     is {poi} = {} after {poi} = {}",
                    i + 2,
                    pair[1],
                    pair[0]
                ));
            }
        }
        let at = |i: usize| format!("at {poi} = {} (point {} of {n})", self.mu[i], i + 1);
        for i in 0..n {
            let values = std::iter::once(("observed", self.observed[i]))
                .chain(QUANTILES.iter().copied().zip(self.expected[i]));
            for (name, value) in values {
                if !(value.is_finite() && value >= 0.0) {
                    let which = if name == "observed" {
                        "observed CLs".to_string()
                    } else {
                        format!("expected CLs ({name})")
                    };
                    return refuse(format!(
                        "{which} {} is {value}; CLs is a ratio of probabilities, finite and ≥ 0",
                        at(i)
                    ));
                }
            }
        }
        let limits = self.observed_limit.map(|l| ("observed", l)).into_iter();
        let expected = self.expected_limits.into_iter().flatten();
        for (name, limit) in limits.chain(QUANTILES.iter().copied().zip(expected)) {
            if !limit.is_finite() {
                return refuse(format!("the {name} limit on {poi} is {limit}"));
            }
        }
        Ok(())
    }

    /// Every CLs value drawn.
    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.observed
            .iter()
            .copied()
            .chain(self.expected.iter().flatten().copied())
    }

    fn axis(&self) -> CLsAxis {
        let line = 1.0 - self.cl;
        let largest = self.values().fold(1.0f64, f64::max);
        if line >= 0.025 {
            return CLsAxis::Linear {
                top: 1.05 * largest,
            };
        }
        let smallest = self
            .values()
            .filter(|v| *v > 0.0)
            .fold(line / 10.0, f64::min)
            .max(line * 1e-4);
        // The decade at or below `smallest` (the nudge keeps an exact power of ten its own).
        let decade = (smallest.log10() + 1e-9).floor() as i32;
        CLsAxis::Log {
            bottom: 10f64.powi(decade),
            top: 1.5 * largest,
        }
    }
}

/// The Brazil-band figure of `curve`, staged as `stem.png` and `stem.svg` in `outputs`.
/// Inputs that cannot be drawn faithfully (lengths that differ, fewer than two points,
/// non-finite or negative CLs) are refused before anything is staged.
pub fn brazil(outputs: &mut OutputSet, stem: &Path, curve: &BrazilCurve) -> Result<Vec<PathBuf>> {
    curve.check(stem)?;
    let axis = curve.axis();
    write_png_and_svg(
        outputs,
        stem,
        |tmp| {
            draw(
                BitMapBackend::new(tmp, SIZE).into_drawing_area(),
                curve,
                axis,
            )
        },
        |tmp| draw(SVGBackend::new(tmp, SIZE).into_drawing_area(), curve, axis),
    )
}

type Drawn = std::result::Result<(), String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    curve: &BrazilCurve,
    axis: CLsAxis,
) -> Drawn
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let x = curve.mu[0]..curve.mu[curve.mu.len() - 1];
    let mut builder = ChartBuilder::on(&root);
    builder
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(65);
    match axis {
        // The legend goes where the curves are not: CLs falls from 1 on the left, so the
        // upper right is empty on a linear axis, the lower left on a logarithmic one.
        CLsAxis::Linear { top } => {
            let chart = builder.build_cartesian_2d(x, 0.0..top).map_err(err)?;
            draw_curves(chart, curve, (0.0, top), SeriesLabelPosition::UpperRight)?;
        }
        CLsAxis::Log { bottom, top } => {
            let chart = builder
                .build_cartesian_2d(x, (bottom..top).log_scale())
                .map_err(err)?;
            draw_curves(chart, curve, (bottom, top), SeriesLabelPosition::LowerLeft)?;
        }
    }
    root.present().map_err(err)
}

/// The bands, curves, line and limits into a chart whose CLs axis spans `range`.
fn draw_curves<'a, DB, Y>(
    mut chart: ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    curve: &BrazilCurve,
    range: (f64, f64),
    legend: SeriesLabelPosition,
) -> Drawn
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc(curve.poi)
        .y_desc("CLs")
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(err)?;
    let shown = |v: f64| v.clamp(range.0, range.1);
    let line_of = |k: usize| -> Vec<(f64, f64)> {
        (curve.mu.iter().zip(curve.expected))
            .map(|(&mu, e)| (mu, shown(e[k])))
            .collect()
    };
    let band = |low: usize, high: usize| -> Vec<(f64, f64)> {
        let mut outline = line_of(low);
        outline.extend(line_of(high).into_iter().rev());
        outline
    };
    for ((low, high), colour, label) in [
        ((0, 4), YELLOW_BAND, "expected ±2σ"),
        ((1, 3), GREEN_BAND, "expected ±1σ"),
    ] {
        chart
            .draw_series(std::iter::once(Polygon::new(
                band(low, high),
                colour.filled(),
            )))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], colour.filled()));
    }
    let median = BLACK.stroke_width(2);
    chart
        .draw_series(DashedLineSeries::new(line_of(2), 8, 5, median))
        .map_err(err)?
        .label("expected CLs (median)")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], median));
    let observed: Vec<(f64, f64)> = (curve.mu.iter().zip(curve.observed))
        .map(|(&mu, &cls)| (mu, shown(cls)))
        .collect();
    chart
        .draw_series(LineSeries::new(observed.iter().copied(), median))
        .map_err(err)?;
    chart
        .draw_series(observed.iter().map(|&p| Circle::new(p, 4, BLACK.filled())))
        .map_err(err)?
        .label("observed CLs")
        .legend(move |(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new([(0, 0), (20, 0)], median)
                + Circle::new((10, 0), 4, BLACK.filled())
        });
    let line = 1.0 - curve.cl;
    let (x0, x1) = (curve.mu[0], curve.mu[curve.mu.len() - 1]);
    chart
        .draw_series(LineSeries::new(
            [(x0, line), (x1, line)],
            RED.stroke_width(2),
        ))
        .map_err(err)?
        .label(format!(
            "CLs = {} ({} % CL)",
            number(line),
            number(100.0 * curve.cl)
        ))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
    draw_limits(&mut chart, curve, range)?;
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 15))
        .background_style(WHITE)
        .border_style(BLACK)
        .position(legend)
        .draw()
        .map_err(err)
}

/// Vertical lines at the observed limit (solid) and the expected median limit (dashed), with
/// the values, and the expected bands, in the legend.
fn draw_limits<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    curve: &BrazilCurve,
    (bottom, top): (f64, f64),
) -> Drawn
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let style = LIMIT_BLUE.stroke_width(2);
    let poi = curve.poi;
    // A limit outside the tested range is drawn nowhere (plotters would draw it over the
    // axes), only named in the legend.
    let (x0, x1) = (curve.mu[0], curve.mu[curve.mu.len() - 1]);
    let vertical = |limit: f64| {
        let inside = (x0..=x1).contains(&limit);
        inside
            .then_some([(limit, bottom), (limit, top)])
            .into_iter()
            .flatten()
    };
    if let Some(limit) = curve.observed_limit {
        chart
            .draw_series(LineSeries::new(vertical(limit), style))
            .map_err(err)?
            .label(format!("observed limit: {poi} < {}", number(limit)))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    if let Some(e) = curve.expected_limits {
        chart
            .draw_series(DashedLineSeries::new(vertical(e[2]), 8, 5, style))
            .map_err(err)?
            .label(format!("expected limit: {poi} < {}", number(e[2])))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 8, y)], style));
        for (sigma, low, high) in [("±1σ", e[1], e[3]), ("±2σ", e[0], e[4])] {
            chart
                .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())
                .map_err(err)?
                .label(format!("    {sigma}: {} – {}", number(low), number(high)))
                .legend(|(x, y)| EmptyElement::at((x, y)));
        }
    }
    Ok(())
}

/// `x` to at most four significant digits, without trailing zeros, and without an exponent in
/// the usual range of POI values and CLs.
fn number(x: f64) -> String {
    if x == 0.0 {
        return "0".to_string();
    }
    if !(1e-4..1e6).contains(&x.abs()) {
        return format!("{x:.3e}");
    }
    let decimals = (3 - x.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve<'a>(cl: f64, observed: &'a [f64], expected: &'a [[f64; 5]]) -> BrazilCurve<'a> {
        BrazilCurve {
            poi: "mu",
            cl,
            mu: &[0.0, 1.0, 2.0],
            observed,
            expected,
            observed_limit: None,
            expected_limits: None,
        }
    }

    #[test]
    fn the_cls_axis_is_linear_unless_the_line_would_sit_on_it() {
        let expected = [
            [1.0; 5],
            [0.3, 0.4, 0.5, 0.6, 0.7],
            [0.0, 1e-3, 0.01, 0.02, 0.05],
        ];
        let observed = [1.0, 0.5, 2e-3];
        let top = 1.05;
        assert_eq!(
            curve(0.95, &observed, &expected).axis(),
            CLsAxis::Linear { top }
        );
        // 1 − cl = 0.01: down to the smallest positive value, 1e-3.
        assert_eq!(
            curve(0.99, &observed, &expected).axis(),
            CLsAxis::Log {
                bottom: 1e-3,
                top: 1.5
            }
        );
        // At most four decades below the line, whatever the smallest value.
        let tiny = [1.0, 0.5, 1e-30];
        assert_eq!(
            curve(0.999, &tiny, &expected).axis(),
            CLsAxis::Log {
                bottom: 1e-7,
                top: 1.5
            }
        );
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(number(1.23456), "1.235");
        assert_eq!(number(0.05), "0.05");
        assert_eq!(number(1.0 - 0.95), "0.05");
        assert_eq!(number(95.0), "95");
        assert_eq!(number(12345.6), "12346");
        assert_eq!(number(-0.3), "-0.3");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(2.5e-7), "2.500e-7");
    }
}
