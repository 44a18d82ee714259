//! The toy fast path allocates nothing per NLL evaluation: a counting allocator watches
//! `Likelihood::evaluate_into` (what the fits' Newton line searches call) on a toy of the
//! example analysis, at every order.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use nsbi::infer::toys::ToySource;
use nsbi::likelihood::{Evaluation, Order};

/// Counts the allocations made on the current thread (tests run on threads of their own).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn toy_evaluations_do_not_allocate() {
    let analysis = example_analysis("workspace_exact.yaml");
    let theta = [1.0, 0.2, -0.1];
    let source = ToySource::asimov(&analysis, &theta).unwrap();
    let toy = source.draw(5, 0, 3, true);
    let n_events = toy.unbinned()[0].weights.len();
    assert!(
        (1000..4096).contains(&n_events),
        "a one-block toy: {n_events}"
    );

    let mut out = Evaluation::default();
    for order in [Order::Value, Order::Gradient, Order::Hessian] {
        // The first call sizes the arrays (and this thread's event-loop scratch).
        toy.evaluate_into(&theta, order, &mut out);
        let reference = toy.evaluate(&[1.1, 0.3, 0.2], order);
        let n = allocations_during(|| {
            for step in 0..20 {
                let point = [1.0 + 0.01 * step as f64, 0.2, -0.1];
                toy.evaluate_into(&point, order, &mut out);
            }
            toy.evaluate_into(&[1.1, 0.3, 0.2], order, &mut out);
        });
        assert_eq!(n, 0, "{order:?}: {n} allocations in 21 evaluations");
        // Reusing the arrays changes no number.
        assert_eq!(out.nll.to_bits(), reference.nll.to_bits());
        assert_eq!(out.gradient, reference.gradient);
        assert_eq!(out.hessian, reference.hessian);
    }
}

/// The binned NLL at every order, and a binned toy, allocate nothing once their buffers and
/// this thread's scratch have been through one call (the fits' and toys' loops).
#[test]
fn binned_evaluations_and_toys_do_not_allocate() {
    use nsbi::binned::nll::{NllDerivatives, Order as BinnedOrder};
    use nsbi::binned::{pyhf, BinnedModel};
    use rand::SeedableRng;

    let path = root().join("tests/fixtures/binned/multichannel.json");
    let json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let spec = pyhf::import(&json, None, "multichannel").unwrap();
    let model = BinnedModel::from_spec(&spec, "multichannel").unwrap();
    let inits = model.inits();
    let data = &model.observed;
    let points: Vec<Vec<f64>> = (0..20)
        .map(|step| {
            let mut point = inits.clone();
            point[0] += 0.01 * step as f64;
            point
        })
        .collect();
    let mut out = NllDerivatives::default();
    for order in [
        BinnedOrder::Value,
        BinnedOrder::Gradient,
        BinnedOrder::Hessian,
    ] {
        model.evaluate_into(&inits, data, order, &mut out).unwrap();
        let n = allocations_during(|| {
            for point in &points {
                model.evaluate_into(point, data, order, &mut out).unwrap();
            }
        });
        assert_eq!(n, 0, "{order:?}: {n} allocations in 20 evaluations");
        let fresh = match order {
            BinnedOrder::Value => model.nll(&inits, data).unwrap(),
            _ => model.nll_hessian(&inits, data).unwrap().value,
        };
        model.evaluate_into(&inits, data, order, &mut out).unwrap();
        assert_eq!(out.value.to_bits(), fresh.to_bits());
    }

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut toy = model.observed.clone();
    model.sample_into(&inits, &mut rng, &mut toy).unwrap();
    let n = allocations_during(|| {
        for _ in 0..20 {
            model.sample_into(&inits, &mut rng, &mut toy).unwrap();
        }
    });
    assert_eq!(n, 0, "{n} allocations in 20 toys");
}
