//! The cost of one `Likelihood::nll` call on the example workspace's observed data, timed in
//! Rust: the reference for the Python package's per-call overhead (`Likelihood.nll` timed with
//! `timeit` in Python, same workspace, same θ).
//!
//!     cargo run --release --example nll_call -- workspaces/offshell_toy/workspace_exact.yaml

use std::time::Instant;

use nsbi::analysis::{Analysis, Dataset};

fn main() -> nsbi::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "workspaces/offshell_toy/workspace_exact.yaml".into());
    let analysis = Analysis::open(path.as_ref(), None, false)?;
    let like = analysis.likelihood(&Dataset::Observed)?;
    let theta = analysis.model.init();
    let events: usize = like.unbinned().iter().map(|c| c.weights.len()).sum();
    let mut best = f64::INFINITY;
    let mut sum = 0.0;
    // The best of 7 rounds of 20 000 calls: the call's cost without the machine's noise.
    for _ in 0..7 {
        let calls = 20_000;
        let start = Instant::now();
        for _ in 0..calls {
            sum += std::hint::black_box(like.nll(std::hint::black_box(&theta))).nll;
        }
        best = best.min(start.elapsed().as_secs_f64() / calls as f64);
    }
    println!(
        "nll on {events} events: {:.3} µs per call (best of 7 × 20000; checksum {sum:.3})",
        best * 1e6
    );
    Ok(())
}
