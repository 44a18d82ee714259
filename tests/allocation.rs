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
    let n_events = toy.channels[0].weights.len();
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
