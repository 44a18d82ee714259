//! Fits and profile scans: `fit`, `scan`.

use std::path::PathBuf;

use nsbi::analysis::Dataset;
use nsbi::results::{FitOutput, ScanBestFit, ScanOutput};

use super::{format_ends, load_analysis, print_warnings, CacheArgs};

#[derive(clap::Args)]
pub struct FitArgs {
    /// The workspace YAML file.
    workspace: PathBuf,
    /// Fit the Asimov set (weighted MC) at these values instead of the observed data,
    /// e.g. `mu=1,alpha_eff=0`; unlisted parameters take their `init`.
    #[arg(long)]
    asimov: Option<String>,
    /// Hold parameters constant, e.g. `alpha_shape=0`.
    #[arg(long)]
    fix: Option<String>,
    /// Start the fit from these values, e.g. `mu=2`.
    #[arg(long)]
    set_init: Option<String>,
    /// Skip the profile-likelihood intervals (Hessian errors only).
    #[arg(long)]
    no_minos: bool,
    /// Write the result as JSON (schema in the README).
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
    /// Exit 0 even when the Hessian at the end point is not positive definite (a flat or
    /// downward direction, often a parameter at a bound): the point is reported without
    /// errors or correlations. Without this flag such a fit is an error (exit 1).
    #[arg(long)]
    accept_non_pd_hessian: bool,
}

#[derive(clap::Args)]
pub struct ScanArgs {
    /// The workspace YAML file.
    workspace: PathBuf,
    /// Parameter to scan; give twice for a 2-D scan.
    #[arg(long, required = true)]
    poi: Vec<String>,
    /// Range low:high, one per --poi (e.g. 0:3, or -2:2).
    #[arg(long, required = true, allow_hyphen_values = true)]
    range: Vec<String>,
    /// Grid points per parameter (one value for all, or one per --poi).
    #[arg(long, default_value = "31")]
    points: Vec<usize>,
    /// Also scan with the nuisances frozen at their best-fit values (both curves in the plot).
    #[arg(long)]
    stat_only: bool,
    /// Confidence levels (%) of a 2-D scan's regions, repeatable [default: 68.27 and 95].
    #[arg(long)]
    cl: Vec<f64>,
    /// Scan the Asimov set at these values instead of the observed data.
    #[arg(long)]
    asimov: Option<String>,
    /// Hold parameters constant, e.g. `alpha_shape=0`.
    #[arg(long)]
    fix: Option<String>,
    /// Write the scan as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Plot file stem: writes STEM.png and STEM.svg.
    #[arg(long)]
    plot: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn run_fit(args: &FitArgs) -> anyhow::Result<()> {
    let analysis = load_analysis(&args.workspace, args.cache.cache_dir.clone())?;
    let dataset = analysis.dataset(args.asimov.as_deref())?;
    let like = analysis.likelihood(&dataset)?;
    let options = analysis.fit_options(&like, args.set_init.as_deref(), args.fix.as_deref())?;
    let report = nsbi::analysis::fit_with_intervals(&like, &options, !args.no_minos);
    let output = FitOutput::new(&report, &analysis.model);
    print_fit(&output, &dataset);
    if let Some(path) = &args.json {
        nsbi::report::write_json_atomic(path, &serde_json::to_value(&output)?)?;
    }
    if !report.result.converged {
        anyhow::bail!("fit did not converge: {}", report.result.message);
    }
    check_hessian(&report.result, args.accept_non_pd_hessian)
}

/// A fit that ended where the Hessian is not positive definite is not a valid minimum: an
/// error unless `--accept-non-pd-hessian`.
fn check_hessian(result: &nsbi::fit::FitResult, accept: bool) -> anyhow::Result<()> {
    if result.hessian == nsbi::fit::HessianStatus::NotPositiveDefinite && !accept {
        anyhow::bail!(
            "the fit ended where the Hessian is not positive definite ({}): no errors, no \
             correlations, and not a minimum in every direction. Fix or bound the flat \
             parameters, or pass --accept-non-pd-hessian to accept the point without errors",
            result.message
        );
    }
    Ok(())
}

pub fn run_scan(args: &ScanArgs) -> anyhow::Result<()> {
    let workspace = args.workspace.as_path();
    let analysis = load_analysis(workspace, args.cache.cache_dir.clone())?;
    let ranges = args
        .range
        .iter()
        .map(|r| nsbi::fit::scan::parse_range(r))
        .collect::<nsbi::Result<Vec<_>>>()?;
    let names: Vec<&str> = args.poi.iter().map(String::as_str).collect();
    let request = nsbi::analysis::ScanRequest::new(
        &analysis.model,
        &names,
        &ranges,
        &args.points,
        args.stat_only,
    )?;
    let parameters = request.parameters.clone();
    let dataset = analysis.dataset(args.asimov.as_deref())?;
    let like = analysis.likelihood(&dataset)?;
    let options = analysis.fit_options(&like, None, args.fix.as_deref())?;
    let mut request = request;
    if !args.cl.is_empty() {
        request.levels = args.cl.clone();
    }
    let (report, scans) = nsbi::analysis::scan_report(&like, &options, &request, true)?;
    print_scan(&report);
    let mut outputs = nsbi::report::OutputSet::new();
    if let Some(path) = &args.json {
        outputs.json(path, &serde_json::to_value(&report)?)?;
    }
    if let Some(stem) = &args.plot {
        let names: Vec<&str> = args.poi.iter().map(String::as_str).collect();
        if parameters.len() == 1 {
            let curves: Vec<nsbi::plot::Curve> = scans
                .iter()
                .zip([(report.label(), false), ("stat-only", true)])
                .map(|(s, (label, dashed))| nsbi::plot::Curve {
                    label: label.into(),
                    points: s.points.iter().map(|p| (p.values[0], p.t)).collect(),
                    dashed,
                })
                .collect();
            nsbi::plot::scan_1d(
                &mut outputs,
                stem,
                names[0],
                &curves,
                &nsbi::fit::scan::THRESHOLDS_1D,
            )?;
        } else {
            let s = &scans[0];
            // Excluded points (no likelihood) have t = NaN: drawn as such.
            let cells: Vec<(f64, f64, f64)> = s
                .points
                .iter()
                .filter(|p| !p.best_fit)
                .map(|p| (p.values[0], p.values[1], p.t))
                .collect();
            let contours = report.curve.contours.as_deref().unwrap_or_default();
            let step = |k: usize| {
                (request.ranges[k].1 - request.ranges[k].0) / (request.points[k] - 1) as f64
            };
            let best = (s.best.theta[parameters[0]], s.best.theta[parameters[1]]);
            nsbi::plot::scan_2d(
                &mut outputs,
                stem,
                (names[0], names[1]),
                &cells,
                (step(0), step(1)),
                best,
                contours,
            )?;
        }
    }
    for path in outputs.commit()? {
        if Some(&path) != args.json.as_ref() {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

fn print_scan(report: &ScanOutput) {
    if let Some(poi) = &report.poi {
        let best = match report.best_fit {
            ScanBestFit::One(x) => x,
            ScanBestFit::ByName(_) => f64::NAN,
        };
        println!("scan of {poi}: best fit {best:.6}");
        let curves = [(report.label(), Some(&report.curve))];
        for (label, curve) in curves
            .into_iter()
            .chain([("stat-only", report.stat_only.as_ref())])
        {
            let Some(curve) = curve else { continue };
            let (Some(intervals), Some(open_ends)) = (&curve.intervals, &curve.open_ends) else {
                continue;
            };
            for (cl, list) in intervals {
                let open = open_ends.get(cl).map_or(&[][..], Vec::as_slice);
                println!(
                    "  {label:<10} {cl:>6} % CL (asymptotic): {}",
                    format_ends(list, open)
                );
            }
        }
    } else {
        println!(
            "2-D scan of {}: best fit {}",
            serde_json::to_string(&report.pois).unwrap_or_default(),
            serde_json::to_string(&report.best_fit).unwrap_or_default()
        );
        print_contours(report);
    }
    print_warnings(&report.warnings);
}

/// One line per 2-D region: its threshold, polylines and extent on the grid.
fn print_contours(report: &ScanOutput) {
    let label = report.label();
    for contour in report.curve.contours.iter().flatten() {
        let points = contour.polylines.iter().flatten();
        let extent = |k: usize| {
            let lo = points.clone().map(|p| p[k]).fold(f64::INFINITY, f64::min);
            (
                lo,
                points
                    .clone()
                    .map(|p| p[k])
                    .fold(f64::NEG_INFINITY, f64::max),
            )
        };
        let ((x0, x1), (y0, y1)) = (extent(0), extent(1));
        let closed = contour.closed.iter().filter(|&&c| c).count();
        println!(
            "  {label:<10} {:>6} % CL (asymptotic, t ≤ {:.3}): {} polyline(s), {closed} closed; \
             [{x0:.4}, {x1:.4}] × [{y0:.4}, {y1:.4}]",
            contour.cl,
            contour.threshold,
            contour.polylines.len(),
        );
    }
    if let Some(excluded) = report
        .curve
        .excluded_points
        .as_ref()
        .filter(|e| !e.is_empty())
    {
        println!(
            "  {} grid point(s) excluded (no likelihood), e.g. {}",
            excluded.len(),
            serde_json::to_string(&excluded[0]).unwrap_or_default()
        );
    }
}

fn print_fit(fit: &FitOutput, dataset: &Dataset) {
    let status = &fit.status;
    if status.hessian == nsbi::fit::HessianStatus::NotPositiveDefinite.as_str() {
        println!("WARNING: the Hessian is not positive definite: no errors, no correlations");
    }
    print_bound_and_minos_warnings(fit);
    println!(
        "fit to {}: {} ({} evaluations, EDM {:.2e})  NLL = {:.6}",
        match dataset {
            Dataset::Observed => "observed data".to_string(),
            Dataset::Asimov(_) => "Asimov data".to_string(),
        },
        status.message,
        status.n_eval,
        status.edm,
        fit.nll
    );
    if let Some(line) = nsbi::likelihood::normalisation::report_line(&fit.normalisation) {
        println!("{line}");
    }
    for channel in &fit.binned_channels {
        println!("{}", channel.summary());
    }
    println!(
        "{:<20} {:>12} {:>10} {:>10} {:>10}  note",
        "parameter", "value", "error", "-err", "+err"
    );
    for (name, p) in &fit.parameters {
        let note = if p.fixed {
            "fixed".to_string()
        } else if p.at_bound {
            "at bound".to_string()
        } else if let Some(pull) = p.pull {
            let pull = format!("pull {pull:+.3}");
            match p.constraint {
                Some(width) => format!("{pull}, constraint {width:.3}"),
                None => pull,
            }
        } else {
            String::new()
        };
        println!(
            "{:<20} {:>12.6} {:>10} {:>10} {:>10}  {note}",
            name,
            p.value,
            error_cell(p.error, 1.0),
            error_cell(p.error_low, -1.0),
            error_cell(p.error_high, 1.0),
        );
    }
}

/// The warnings of a fit that ended on a bound (no error for the parameters there) and of a
/// MINOS interval with an end not found.
fn print_bound_and_minos_warnings(fit: &FitOutput) {
    let names = fit.at_bound();
    if !names.is_empty() {
        println!(
            "WARNING: the minimum lies on a bound of {}: not a stationary point there, so no \
             error for {}",
            names.join(", "),
            if names.len() == 1 { "it" } else { "them" },
        );
    }
    for note in fit.minos.iter().flat_map(|interval| &interval.notes) {
        println!("WARNING: {note}");
    }
}

/// An error column of `print_fit`: the value times `sign`, or "n/a" where there is none.
fn error_cell(error: Option<f64>, sign: f64) -> String {
    error.map_or_else(|| "n/a".to_string(), |e| format!("{:.6}", sign * e))
}
