//! The store against a `BTreeMap` model, as redb's fuzzer checks redb: random sequences of
//! `Put`, `Delete` and `DeletePrefix`, compared by scans before and after a reopen.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const QUEUE: usize = 64;

/// One step of the model test.
#[derive(Debug, Clone)]
enum ModelOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    DeletePrefix(Vec<u8>),
}

/// Short keys over a tiny alphabet (including 0xFF) so that prefixes collide often.
fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, 0xFF]), 0..4)
}

fn model_op_strategy() -> impl Strategy<Value = ModelOp> {
    prop_oneof![
        4 => (key_strategy(), prop::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(key, value)| ModelOp::Put(key, value)),
        2 => key_strategy().prop_map(ModelOp::Delete),
        1 => key_strategy().prop_map(ModelOp::DeletePrefix),
    ]
}

fn to_write_op(op: &ModelOp) -> WriteOp {
    match op.clone() {
        ModelOp::Put(key, value) => WriteOp::Put { table: Table::Semantic, key, value },
        ModelOp::Delete(key) => WriteOp::Delete { table: Table::Semantic, key },
        ModelOp::DeletePrefix(prefix) => WriteOp::DeletePrefix { table: Table::Semantic, prefix },
    }
}

fn apply_to_model(model: &mut BTreeMap<Vec<u8>, Vec<u8>>, op: &ModelOp) {
    match op {
        ModelOp::Put(key, value) => {
            model.insert(key.clone(), value.clone());
        }
        ModelOp::Delete(key) => {
            model.remove(key);
        }
        ModelOp::DeletePrefix(prefix) => model.retain(|key, _| !key.starts_with(prefix)),
    }
}

fn model_scan(
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
    prefix: &[u8],
    reverse: bool,
    limit: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let matching = model.iter().filter(|(key, _)| key.starts_with(prefix));
    let pairs = matching.map(|(key, value)| (key.clone(), value.clone()));
    if reverse {
        pairs.rev().take(limit).collect()
    } else {
        pairs.take(limit).collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The store against a `BTreeMap`, as redb's fuzzer checks redb. Ops go one by one or in
    /// `write_all` groups; scans are compared after every group and after a reopen.
    #[test]
    fn store_matches_btreemap_model(
        groups in prop::collection::vec(prop::collection::vec(model_op_strategy(), 1..4), 1..16),
        scans in prop::collection::vec((key_strategy(), any::<bool>(), 0usize..6), 1..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut model = BTreeMap::new();
        runtime.block_on(async {
            let store = Store::open(dir.path(), QUEUE).unwrap();
            for group in &groups {
                if group.len() == 1 {
                    store.write(to_write_op(&group[0])).await.unwrap();
                } else {
                    store.write_all(group.iter().map(to_write_op).collect()).await.unwrap();
                }
                for op in group {
                    apply_to_model(&mut model, op);
                }
                let all = store.scan_prefix(Table::Semantic, b"", false, usize::MAX).unwrap();
                prop_assert_eq!(all, model_scan(&model, b"", false, usize::MAX));
            }
            store.close().await.unwrap();
            drop(store);

            let store = Store::open(dir.path(), QUEUE).unwrap();
            for (prefix, reverse, limit) in &scans {
                let found = store.scan_prefix(Table::Semantic, prefix, *reverse, *limit).unwrap();
                prop_assert_eq!(found, model_scan(&model, prefix, *reverse, *limit));
            }
            for (key, value) in &model {
                let found = store.get(Table::Semantic, key).unwrap();
                prop_assert_eq!(found.as_ref(), Some(value));
            }
            store.close().await.unwrap();
            Ok(())
        })?;
    }
}
