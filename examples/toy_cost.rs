//! Where a toy's time goes (issue 13): the toys of `nsbi toys WS --mu-grid V:V:1 --threads 1`
//! made and fitted one by one, on one thread, with each toy's fit time, its evaluations by
//! order (conditional + free fit) and t; then the cost of one evaluation of each order at the
//! last toy's best fit, and, for the shape normalisation alone, of one exact pass of each order
//! per process. The toys are the command's (same seed, same streams), so their t can be compared
//! between two builds.
//!
//!     cargo run --release --example toy_cost -- WS [--toys N] [--mu V] [--seed S] [--t-out FILE]
//!
//! `--t-out` writes one line per toy: toy index, t, μ̂ (`%.17g`), for a before/after diff.

use std::io::Write;

use nsbi::analysis::Analysis;
use nsbi::fit::EvaluationCounts;
use nsbi::infer::construction;
use nsbi::infer::run::{toy_plan, GridRequest, ToyRequest};
use nsbi::infer::test_stat::TestStatistic;
use nsbi::infer::toys::{nll_at_minimum, toy_fits, ToySource};
use nsbi::likelihood::normalisation::ShapeIntegral;
use nsbi::likelihood::Order;

struct Options {
    workspace: String,
    toys: usize,
    mu: f64,
    seed: u64,
    t_out: Option<String>,
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        workspace: String::new(),
        toys: 10,
        mu: 1.0,
        seed: 1,
        t_out: None,
    };
    while let Some(a) = args.next() {
        let mut value = || args.next().expect("a value after the option");
        match a.as_str() {
            "--toys" => o.toys = value().parse().expect("--toys N"),
            "--mu" => o.mu = value().parse().expect("--mu V"),
            "--seed" => o.seed = value().parse().expect("--seed S"),
            "--t-out" => o.t_out = Some(value()),
            _ => o.workspace = a,
        }
    }
    assert!(!o.workspace.is_empty(), "usage: toy_cost WS [--toys N]");
    o
}

/// CPU time of this process, in ms: the sum over its threads of `/proc/self/task/*/schedstat`
/// (the machine is shared, and wall time there counts other processes' turns).
fn cpu_ms() -> f64 {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    let ns: f64 = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<f64>().ok())
        .sum();
    ns * 1e-6
}

/// The best of `rounds` timings of `f`, in ms of this process's CPU time.
fn best_ms(rounds: usize, mut f: impl FnMut()) -> f64 {
    (0..rounds)
        .map(|_| {
            let start = cpu_ms();
            f();
            cpu_ms() - start
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> nsbi::Result<()> {
    let o = options();
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .expect("one thread");
    let mut analysis = Analysis::open(o.workspace.as_ref(), None, false)?;
    let request = ToyRequest {
        poi: None,
        grid: GridRequest::MuGrid(format!("{}:{}:1", o.mu, o.mu)),
        profile: Vec::new(),
        n_toys: o.toys,
        seed: o.seed,
        no_syst: false,
        statistic: TestStatistic::Tmu,
    };
    let plan = toy_plan(&mut analysis, &request)?;
    analysis.prepare_generation()?;
    let profile = construction::observed_profile(&analysis, &plan)?;
    let theta_gen = profile.generation_point(0).to_vec();
    let source = ToySource::asimov(&analysis, &theta_gen)?;
    let mut t_out = o.t_out.as_ref().map(|p| {
        std::io::BufWriter::new(std::fs::File::create(p).expect("--t-out file can be written"))
    });
    println!("toy   ms    conditional (v/g/h, iterations)  free (v/g/h, iterations)   t");
    let (mut total_ms, mut total) = (0.0, EvaluationCounts::default());
    let mut last = None;
    for toy in 0..o.toys {
        let like = source.draw(plan.seed, 0, toy, plan.systematics);
        let start = cpu_ms();
        let (conditional, free) = toy_fits(&like, &plan, &theta_gen);
        let ms = cpu_ms() - start;
        // t as `fit_toy` takes it (the free fit can only be lower).
        let nll_conditional = nll_at_minimum(&conditional);
        let t = 2.0 * (nll_conditional - nll_at_minimum(&free).min(nll_conditional));
        let mu_hat = free.theta[plan.pois[0]];
        let (c, f) = (conditional.evaluations, free.evaluations);
        println!(
            "{toy:3} {ms:7.1}   {:2}/{:2}/{:2}, {:2}                  {:2}/{:2}/{:2}, {:2}           {:.9}",
            c.value,
            c.gradient,
            c.hessian,
            conditional.iterations,
            f.value,
            f.gradient,
            f.hessian,
            free.iterations,
            t
        );
        if let Some(out) = t_out.as_mut() {
            writeln!(out, "{toy} {:.17e} {:.17e}", t, mu_hat).expect("--t-out written");
        }
        total_ms += ms;
        total += c;
        total += f;
        last = Some((like, free.theta));
    }
    let n = o.toys as f64;
    println!(
        "mean: {:.1} ms per toy; evaluations per toy {:.1} value, {:.1} gradient, {:.1} Hessian",
        total_ms / n,
        total.value as f64 / n,
        total.gradient as f64 / n,
        total.hessian as f64 / n
    );
    let Some((like, theta)) = last else {
        return Ok(());
    };
    let orders = [Order::Value, Order::Gradient, Order::Hessian];
    let mut out = like.evaluate(&theta, Order::Hessian);
    // Each timed evaluation at a point of its own (the normalisation's memo holds the last ones).
    let mut shifted = theta.clone();
    let mut shift = || {
        for x in shifted.iter_mut() {
            *x += 1e-9;
        }
        shifted.clone()
    };
    let per_order: Vec<f64> = orders
        .iter()
        .map(|&order| {
            best_ms(5, || {
                let at = shift();
                like.evaluate_into(&at, order, &mut out)
            })
        })
        .collect();
    println!(
        "one evaluation near the last free fit's minimum (ms, best of 5): value {:.2}, gradient \
         {:.2}, Hessian {:.2}",
        per_order[0], per_order[1], per_order[2]
    );
    for data in like.unbinned() {
        for (c, process) in data.normalisation.processes.iter().enumerate() {
            if process.n_shapes() == 0 {
                continue;
            }
            let mut integral = ShapeIntegral::default();
            let passes: Vec<f64> = orders
                .iter()
                .map(|&order| {
                    best_ms(5, || {
                        let at = shift();
                        process.exact_pass(&at, order, &mut integral)
                    })
                })
                .collect();
            println!(
                "  {} process {c}: K = {}, {} MC events; exact pass (ms) value {:.2}, gradient \
                 {:.2}, Hessian {:.2}",
                data.name,
                process.n_shapes(),
                process.mc_weights().len(),
                passes[0],
                passes[1],
                passes[2]
            );
        }
    }
    Ok(())
}
