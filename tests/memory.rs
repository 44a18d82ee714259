//! Memory (issue 13, finding 4): a command reads only the ratio entries it needs, and the
//! pooled MC's shape inputs exist once, shared by the Asimov sets, the toys and the shape
//! normalisation.

mod common;

use std::collections::BTreeSet;

use common::*;
use nsbi::analysis::{Analysis, Dataset};
use nsbi::likelihood::data;
use nsbi::workspace::EventRole;

/// Index of the event file of `role` among the channel's sources.
fn source(analysis: &Analysis, role: EventRole) -> usize {
    analysis.ratios[0]
        .sources
        .iter()
        .position(|(r, _)| *r == role)
        .unwrap()
}

/// The entries an observed-data likelihood needs: every process's ratio and shape inputs on
/// the observed events, and each process's shape inputs on its own MC (for N_c(α)).
fn observed_entries(analysis: &Analysis) -> BTreeSet<(String, usize)> {
    let observed = source(analysis, EventRole::Observed);
    let mut needed = BTreeSet::new();
    for p in &analysis.model.channels[0].processes {
        needed.insert((p.ratio.clone(), observed));
        let own = source(analysis, EventRole::Process(p.name.clone()));
        for s in &p.shape_systematics {
            for label in [&s.up, &s.down] {
                needed.insert((label.clone(), observed));
                needed.insert((label.clone(), own));
            }
        }
    }
    needed
}

#[test]
fn an_observed_fit_reads_no_entry_of_the_mc_pool() {
    let analysis = example_analysis("workspace_exact.yaml");
    assert!(
        analysis.ratios[0].entries_read().is_empty(),
        "loading the workspace read ratio entries"
    );
    let like = analysis.likelihood(&Dataset::Observed).unwrap();
    assert_eq!(like.unbinned()[0].weights.len(), 2023);
    let read = analysis.ratios[0].entries_read();
    let needed = observed_entries(&analysis);
    // Of the 5 ensembles × 5 event files, 7 entries: no process ratio on any MC sample, no
    // shape input on another process's MC, nothing on the reference sample.
    assert_eq!(needed.len(), 7, "{needed:?}");
    assert_eq!(read, needed);
    // The Asimov pool reads the rest it needs: every process's ratio and shape inputs on
    // every process's MC.
    let theta = analysis.model.init();
    analysis.datasets(&Dataset::Asimov(theta)).unwrap();
    let mc: Vec<usize> = analysis.model.channels[0]
        .processes
        .iter()
        .map(|p| source(&analysis, EventRole::Process(p.name.clone())))
        .collect();
    let read = analysis.ratios[0].entries_read();
    for p in &analysis.model.channels[0].processes {
        for &s in &mc {
            assert!(read.contains(&(p.ratio.clone(), s)), "{read:?}");
        }
    }
    let reference = source(&analysis, EventRole::Reference);
    assert!(read.iter().all(|(_, s)| *s != reference), "{read:?}");
}

/// The shape inputs of process `c`'s systematics in its normalisation and in `set` (a dataset
/// over the pooled MC) share one allocation, and the normalisation's are exactly the pool's
/// events of that process's own MC.
fn assert_shared(analysis: &Analysis, set: &data::ChannelData, c: usize) {
    let pool = &analysis.model.channels.pools().unwrap()[0];
    let norm = &set.normalisation.processes[c];
    assert!(norm.n_shapes() > 0);
    // The same inputs a normalisation built from the own-MC entries alone reads.
    let own = data::normalisation(&analysis.model.channels[0], &analysis.ratios[0]).unwrap();
    for (k, shape) in norm.shapes().iter().enumerate() {
        let pooled = &pool.processes[c].shapes[k].variations;
        assert!(shape.variations.shares_storage(pooled));
        assert_eq!(shape.variations.len(), pool.ranges[c].len());
        assert_eq!(shape.variations, pooled.events(pool.ranges[c].clone()));
        assert_eq!(shape.variations, own.processes[c].shapes()[k].variations);
    }
}

#[test]
fn the_asimov_pool_and_the_normalisation_share_one_copy_of_the_shape_inputs() {
    let analysis = example_analysis("workspace_exact.yaml");
    let theta = analysis.model.init();
    let sets = analysis.datasets(&Dataset::Asimov(theta.clone())).unwrap();
    let b = 2;
    assert_eq!(analysis.model.channels[0].processes[b].name, "B");
    assert_shared(&analysis, &sets[0], b);
    for (k, shape) in sets[0].processes[b].shapes.iter().enumerate() {
        let pooled = &analysis.model.channels.pools().unwrap()[0].processes[b].shapes[k].variations;
        assert!(shape.variations.shares_storage(pooled));
    }
    // The stand-alone Asimov set builds its own pool, shared with its own normalisation.
    let alone = data::asimov(&analysis.model, &analysis.ratios, &theta).unwrap();
    let norm = &alone[0].normalisation.processes[b];
    assert!(norm.shapes()[0]
        .variations
        .shares_storage(&alone[0].processes[b].shapes[0].variations));
}

#[test]
fn with_the_pools_built_first_the_observed_fit_shares_their_shape_inputs() {
    // What `nsbi toys` does: pools, then the observed fits, then the toys.
    let analysis = example_analysis("workspace_exact.yaml");
    analysis.prepare_generation().unwrap();
    let observed = analysis.datasets(&Dataset::Observed).unwrap();
    assert_shared(&analysis, &observed[0], 2);
}
