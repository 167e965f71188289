//! Vector index tests: exact scan against a brute-force model, HNSW recall against exact scan,
//! deletes and inserts across snapshot swaps, and the background builder.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const DIM: usize = 16;

fn normalise(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    vector.iter_mut().for_each(|x| *x /= norm);
    vector
}

/// `n` normalised vectors around `clusters` random centres.
fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> =
        (0..clusters).map(|_| normalise((0..dim).map(|_| rng.random_range(-1.0..1.0)).collect())).collect();
    (0..n)
        .map(|_| {
            let centre = &centres[rng.random_range(0..clusters)];
            normalise(centre.iter().map(|x| x + rng.random_range(-0.3..0.3)).collect())
        })
        .collect()
}

fn brute_force(model: &BTreeMap<u64, Vec<f32>>, query: &[f32], k: usize) -> Vec<u64> {
    let mut scored: Vec<(u64, f32)> =
        model.iter().map(|(&id, vector)| (id, simd::dot_portable(query, vector))).collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.into_iter().take(k).map(|(id, _)| id).collect()
}

fn exact_index() -> Arc<VectorIndex> {
    VectorIndex::new(DIM, IndexSettings::default(), None)
}

fn insert_all(index: &Arc<VectorIndex>, first_id: u64, vectors: &[Vec<f32>]) {
    let ids: Vec<u64> = (first_id..first_id + vectors.len() as u64).collect();
    index.insert(&ids, &vectors.concat());
}

#[test]
fn exact_search_is_sorted_bounded_and_skips_deleted_ids() {
    let index = exact_index();
    let vectors = clustered(200, DIM, 5, 1);
    insert_all(&index, 0, &vectors);
    let hits = index.search(&vectors[7], 10);
    assert_eq!(hits.len(), 10);
    assert_eq!(hits[0].0, 7);
    assert!((hits[0].1 - 1.0).abs() < 1e-5);
    assert!(hits.windows(2).all(|pair| pair[0].1 >= pair[1].1));
    index.remove(&[7]);
    assert!(index.search(&vectors[7], 10).iter().all(|(id, _)| *id != 7));
    assert_eq!(index.stats().live, 199);
    assert!(index.search(&vectors[0], 0).is_empty());
    assert_eq!(index.search(&vectors[0], 1000).len(), 199);
}

#[test]
fn ids_that_do_not_increase_are_ignored() {
    let index = exact_index();
    let vectors = clustered(3, DIM, 1, 2);
    index.insert(&[5, 5, 3], &vectors.concat());
    assert_eq!(index.stats().live, 1);
}

#[test]
fn hnsw_recall_at_10_against_exact_scan() {
    let index = exact_index();
    let vectors = clustered(3000, DIM, 20, 3);
    insert_all(&index, 0, &vectors);
    assert!(index.build_snapshot());
    assert_eq!(index.stats(), IndexStats { live: 3000, indexed: 3000, building: false });
    let queries = clustered(50, DIM, 20, 4);
    let mut found = 0;
    for query in &queries {
        let exact: Vec<u64> = index.search_exact(query, 10).into_iter().map(|(id, _)| id).collect();
        let approximate: Vec<u64> = index.search(query, 10).into_iter().map(|(id, _)| id).collect();
        found += approximate.iter().filter(|id| exact.contains(id)).count();
    }
    let recall = found as f64 / (queries.len() * 10) as f64;
    assert!(recall >= 0.95, "recall@10 = {recall}");
}

#[test]
fn a_snapshot_plus_tail_plus_deletes_answer_like_exact() {
    let index = exact_index();
    let vectors = clustered(400, DIM, 4, 5);
    insert_all(&index, 0, &vectors[..300]);
    index.build_snapshot();
    insert_all(&index, 300, &vectors[300..]);
    index.remove(&[0, 1, 2, 350]);
    let stats = index.stats();
    assert_eq!((stats.live, stats.indexed), (396, 300));
    for query in vectors.iter().step_by(37) {
        let exact = index.search_exact(query, 5);
        let approximate = index.search(query, 5);
        assert_eq!(exact[0], approximate[0]);
        assert!(approximate.iter().all(|(id, _)| ![0, 1, 2, 350].contains(id)));
    }
    // A second build folds the tail in and forgets deletions it no longer holds.
    index.build_snapshot();
    assert_eq!(index.stats(), IndexStats { live: 396, indexed: 396, building: false });
}

#[tokio::test]
async fn the_background_builder_swaps_a_snapshot_in_above_the_threshold() {
    let rebuilder = Rebuilder::start(4, 1).unwrap();
    let settings = IndexSettings { hnsw_threshold: 100, hnsw: HnswParams::default() };
    let index = VectorIndex::new(DIM, settings, Some(rebuilder));
    let vectors = clustered(150, DIM, 3, 6);
    insert_all(&index, 0, &vectors[..99]);
    assert_eq!(index.stats().indexed, 0, "below the threshold: exact");
    insert_all(&index, 99, &vectors[99..]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while index.stats().indexed == 0 {
        assert!(tokio::time::Instant::now() < deadline, "snapshot built in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(index.stats().live, 150);
    assert_eq!(index.search(&vectors[120], 1)[0].0, 120);
}

#[derive(Debug, Clone)]
enum Op {
    Insert(usize),
    Remove(usize),
    Build,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..20).prop_map(Op::Insert),
        2 => (0usize..100).prop_map(Op::Remove),
        1 => Just(Op::Build),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The index against a `BTreeMap` model: exact search always equals brute force, and the
    /// HNSW path only ever returns live ids, best first.
    #[test]
    fn the_index_matches_a_brute_force_model(ops in prop::collection::vec(op(), 1..25), seed in 0u64..1000) {
        let index = exact_index();
        let mut model = BTreeMap::new();
        let mut next_id = 0u64;
        let pool = clustered(500, DIM, 6, seed);
        let mut rng = StdRng::seed_from_u64(seed);
        for op in ops {
            match op {
                Op::Insert(count) => {
                    let vectors: Vec<Vec<f32>> = (0..count).map(|_| pool[rng.random_range(0..pool.len())].clone()).collect();
                    insert_all(&index, next_id, &vectors);
                    for vector in vectors {
                        model.insert(next_id, vector);
                        next_id += 1;
                    }
                }
                Op::Remove(pick) => {
                    if let Some(&id) = model.keys().nth(pick % model.len().max(1)) {
                        model.remove(&id);
                        index.remove(&[id]);
                    }
                }
                Op::Build => {
                    index.build_snapshot();
                }
            }
            prop_assert_eq!(index.stats().live, model.len());
        }
        for query in pool.iter().step_by(50) {
            let expected = brute_force(&model, query, 5);
            let exact: Vec<u64> = index.search_exact(query, 5).into_iter().map(|(id, _)| id).collect();
            // Equal scores may order differently; compare the scores' multiset via the ids' vectors.
            let score = |id: &u64| simd::dot_portable(query, &model[id]);
            let expected_scores: Vec<f32> = expected.iter().map(score).collect();
            let exact_scores: Vec<f32> = exact.iter().map(score).collect();
            for (a, b) in expected_scores.iter().zip(&exact_scores) {
                prop_assert!((a - b).abs() < 1e-5);
            }
            let approximate = index.search(query, 5);
            prop_assert!(approximate.iter().all(|(id, _)| model.contains_key(id)));
            prop_assert!(approximate.windows(2).all(|pair| pair[0].1 >= pair[1].1));
        }
    }
}
