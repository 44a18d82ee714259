//! The Brazil-band figure of `nsbi limit`: PNG and SVG staged and renamed together, the bands,
//! curves and limits drawn, and inputs that cannot be drawn faithfully refused by name.

mod common;

use std::path::Path;

use common::file_names;
use nsbi::plot::brazil::{brazil, BrazilCurve};
use nsbi::report::OutputSet;

/// Widths of Gaussian-shaped CLs curves exp(−(μ/s)²) for the expected −2σ … +2σ and the
/// observed: their 5 % crossings (the limits) are s·√ln 20.
const WIDTHS: [f64; 5] = [0.6, 0.8, 1.0, 1.3, 1.7];
const OBSERVED_WIDTH: f64 = 1.1;

struct Scan {
    mu: Vec<f64>,
    observed: Vec<f64>,
    expected: Vec<[f64; 5]>,
}

fn scan() -> Scan {
    let mu: Vec<f64> = (0..13).map(|i| 0.25 * i as f64).collect();
    let cls = |mu: f64, s: f64| (-(mu / s).powi(2)).exp();
    Scan {
        observed: mu.iter().map(|&m| cls(m, OBSERVED_WIDTH)).collect(),
        expected: mu.iter().map(|&m| WIDTHS.map(|s| cls(m, s))).collect(),
        mu,
    }
}

fn curve<'a>(scan: &'a Scan, cl: f64) -> BrazilCurve<'a> {
    let crossing = (1.0 / (1.0 - cl)).ln().sqrt();
    BrazilCurve {
        poi: "mu",
        cl,
        mu: &scan.mu,
        observed: &scan.observed,
        expected: &scan.expected,
        observed_limit: Some(OBSERVED_WIDTH * crossing),
        expected_limits: Some(WIDTHS.map(|s| s * crossing)),
    }
}

/// Draws `curve` at `dir/stem` and commits; returns the SVG text and the decoded PNG
/// (width, height, RGB pixels).
fn draw(dir: &Path, stem: &str, curve: &BrazilCurve) -> (String, (u32, u32, Vec<[u8; 3]>)) {
    let stem = dir.join(stem);
    let mut outputs = OutputSet::new();
    let staged = brazil(&mut outputs, &stem, curve).unwrap();
    assert_eq!(
        staged,
        vec![stem.with_extension("png"), stem.with_extension("svg")]
    );
    assert!(
        !stem.with_extension("png").exists(),
        "nothing is in place before the commit"
    );
    outputs.commit().unwrap();
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    (svg, decode_png(&stem.with_extension("png")))
}

fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buffer).unwrap();
    assert_eq!(frame.color_type, png::ColorType::Rgb, "{}", path.display());
    let pixels = buffer[..frame.buffer_size()]
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (frame.width, frame.height, pixels)
}

fn count(svg: &str, needle: &str) -> usize {
    svg.matches(needle).count()
}

#[test]
fn brazil_plot_draws_bands_curves_and_limits_into_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let scan = scan();
    let (svg, (width, height, pixels)) = draw(dir.path(), "limit_mu", &curve(&scan, 0.95));
    assert_eq!(file_names(dir.path()), ["limit_mu.png", "limit_mu.svg"]);
    assert_eq!((width, height), (800, 600));
    // The bands are filled areas: thousands of pixels of each colour, not a legend swatch.
    let yellow = pixels.iter().filter(|p| **p == [255, 223, 0]).count();
    let green = pixels.iter().filter(|p| **p == [0, 200, 0]).count();
    assert!(
        yellow > 5000 && green > 5000,
        "yellow {yellow}, green {green}"
    );
    assert_eq!(count(&svg, "<polygon"), 2, "the ±2σ and ±1σ bands");
    assert!(svg.contains(r##"fill="#FFDF00""##) && svg.contains(r##"fill="#00C800""##));
    // √ln 20 = 1.7308: limits s·1.7308 for the widths of the curves.
    for legend in [
        "expected ±2σ",
        "expected ±1σ",
        "expected CLs (median)",
        "observed CLs",
        "CLs = 0.05 (95 % CL)",
        "observed limit: mu &lt; 1.904",
        "expected limit: mu &lt; 1.731",
        "±1σ: 1.385 – 2.25",
        "±2σ: 1.038 – 2.942",
    ] {
        assert!(svg.contains(legend), "'{legend}' missing from the SVG");
    }
    assert!(svg.contains("\nmu\n</text>") && svg.contains("\nCLs\n</text>"));
    // Two full-height limit lines; none for a limit beyond the tested range, only its value.
    let vertical = |svg: &str| svg.matches(r##"stroke="#1E50C8""##).count();
    let outside = BrazilCurve {
        observed_limit: Some(4.5),
        ..curve(&scan, 0.95)
    };
    let (beyond, _) = draw(dir.path(), "beyond", &outside);
    assert!(beyond.contains("observed limit: mu &lt; 4.5"));
    assert!(
        vertical(&svg) > vertical(&beyond),
        "a line drawn at mu = 4.5 > 3"
    );
}

#[test]
fn brazil_plot_at_99_percent_cl_has_a_logarithmic_cls_axis() {
    let dir = tempfile::tempdir().unwrap();
    let scan = scan();
    let (linear, _) = draw(dir.path(), "linear", &curve(&scan, 0.95));
    let (log, (width, height, _)) = draw(dir.path(), "log", &curve(&scan, 0.99));
    assert_eq!((width, height), (800, 600));
    assert!(log.contains("CLs = 0.01 (99 % CL)"));
    // The line at 0.01 needs an axis reaching below it; decades label the log axis.
    for decade in ["0.0001", "0.001", "0.01", "0.1"] {
        let tick = format!("\n{decade}\n</text>");
        assert!(log.contains(&tick), "no tick {decade} on the log axis");
        assert_eq!(
            linear.contains(&tick),
            decade == "0.1",
            "tick {decade} on the linear axis (0, 0.1, ... 1)"
        );
    }
}

/// The message of `brazil` refusing `curve`; nothing is left in `dir`.
fn refusal(dir: &Path, curve: &BrazilCurve) -> String {
    let mut outputs = OutputSet::new();
    let message = brazil(&mut outputs, &dir.join("limit_mu"), curve)
        .unwrap_err()
        .to_string();
    drop(outputs);
    assert_eq!(file_names(dir), Vec::<String>::new(), "{message}");
    message
}

#[test]
fn brazil_plot_refuses_what_it_cannot_draw_faithfully() {
    let dir = tempfile::tempdir().unwrap();
    let scan = scan();
    let good = || curve(&scan, 0.95);
    let mut nan_median = scan.expected.clone();
    nan_median[2][2] = f64::NAN;
    let negative = [vec![1.0, -0.1], vec![0.0; 11]].concat();
    let mut unordered = scan.mu.clone();
    unordered.swap(0, 1);
    let cases = [
        (
            BrazilCurve {
                expected: &nan_median,
                ..good()
            },
            "expected CLs (median) at mu = 0.5 (point 3 of 13) is NaN; CLs is a ratio of \
             probabilities, finite and ≥ 0",
        ),
        (
            BrazilCurve {
                observed: &negative,
                ..good()
            },
            "observed CLs at mu = 0.25 (point 2 of 13) is -0.1",
        ),
        (
            BrazilCurve {
                observed: &scan.observed[..12],
                ..good()
            },
            "12 observed CLs values for 13 tested values of mu; one per value expected",
        ),
        (
            BrazilCurve {
                expected: &scan.expected[1..],
                ..good()
            },
            "12 expected CLs bands for 13 tested values of mu",
        ),
        (
            BrazilCurve {
                mu: &scan.mu[..1],
                observed: &scan.observed[..1],
                expected: &scan.expected[..1],
                ..good()
            },
            "1 tested value(s) of mu; the curves need at least 2",
        ),
        (
            BrazilCurve {
                mu: &unordered,
                ..good()
            },
            "finite and increasing: point 2 of 13 is mu = 0 after mu = 0.25",
        ),
        (
            BrazilCurve { cl: 1.0, ..good() },
            "cl = 1; a confidence level lies strictly between 0 and 1",
        ),
        (
            BrazilCurve {
                observed_limit: Some(f64::INFINITY),
                ..good()
            },
            "the observed limit on mu is inf",
        ),
    ];
    let prefix = format!("Brazil plot {}: ", dir.path().join("limit_mu").display());
    for (curve, needle) in &cases {
        let message = refusal(dir.path(), curve);
        assert!(message.starts_with(&prefix), "{message}");
        assert!(
            message.contains(needle),
            "'{needle}' missing from: {message}"
        );
    }
}
