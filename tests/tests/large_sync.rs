//! A follower catching up on one large verified batch — 12,000 ADDs and two RETRACTs of them,
//! covered by one signed checkpoint — big enough that its catalog is updated on a second core
//! while the store writes the batch. Checked over the real Match RPC: every sampled hash matches
//! at its own index, the two hashes the origin retracted inside that batch match nothing, the
//! follower holds exactly as many active entries as the origin, and a retraction arriving
//! later in a small batch removes its hash too.

use rand::{Rng, SeedableRng};
use redline_e2e::{eventually, federated_config, submit_pdq, temp_dir, trust_of, TestNode};
use redline_proto::pb::{matching_client::MatchingClient, MatchRequest, Signal};
use redline_server::config::Policy;
use std::time::Duration;

const ORIGIN: &str = "source.example";
const ADDS: usize = 12_000;

/// Log indexes of `ORIGIN` entries at distance 0 from `hash`, as the node at `url` answers.
async fn exact_matches(url: &str, hash: &[u8; 32]) -> Vec<u64> {
    let mut client = MatchingClient::connect(url.to_owned()).await.unwrap();
    let resp = client
        .r#match(MatchRequest {
            signals: vec![Signal {
                signal_type: "pdq".into(),
                value: hex::encode(hash),
                quality: 0,
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    resp.results[0]
        .matches
        .iter()
        .filter(|m| m.origin == ORIGIN && m.distance == 0)
        .map(|m| m.index)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_catching_up_on_a_large_batch_matches_exactly_the_active_entries() {
    let (ds, df) = (temp_dir(), temp_dir());
    let source = TestNode::start_in(ORIGIN, ds.path()).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let hashes: Vec<[u8; 32]> = (0..ADDS).map(|_| rng.gen()).collect();
    for chunk in hashes.chunks(10_000) {
        submit_pdq(&source.node, chunk).await;
    }
    for index in [7, 11_000] {
        source.node.retract(index, "false positive").await.unwrap();
    }
    assert_eq!(source.size_of(ORIGIN), ADDS as u64 + 2);

    let follower = TestNode::start(federated_config(
        "platform.example",
        df.path(),
        &[&source.url],
        vec![trust_of(&source, Policy::Accept)],
        200,
    ))
    .await;
    eventually(
        Duration::from_secs(60),
        "the follower catches up",
        || async { follower.size_of(ORIGIN) == source.size_of(ORIGIN) },
    )
    .await;
    assert_eq!(follower.head_of(ORIGIN), source.head_of(ORIGIN));
    let id_at = |n: &TestNode| n.node.log(ORIGIN).unwrap().state().id;
    let active = |n: &TestNode| n.node.logs().active_count(id_at(n));
    assert_eq!(active(&source), ADDS as u64 - 2);
    assert_eq!(active(&follower), ADDS as u64 - 2);
    assert_eq!(follower.node.evidence_count(), 0);

    for i in [0, 6, 7, 8, 4_321, 10_999, 11_000, 11_999] {
        let want = if i == 7 || i == 11_000 {
            vec![]
        } else {
            vec![i as u64]
        };
        assert_eq!(
            exact_matches(&follower.url, &hashes[i]).await,
            want,
            "hash {i}"
        );
    }

    // A later, small batch: the retraction is applied after its write.
    source.node.retract(42, "false positive").await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the retraction reaches the follower",
        || async { follower.size_of(ORIGIN) == source.size_of(ORIGIN) },
    )
    .await;
    assert!(exact_matches(&follower.url, &hashes[42]).await.is_empty());
    assert_eq!(exact_matches(&follower.url, &hashes[43]).await, vec![43]);
    assert_eq!(active(&follower), ADDS as u64 - 3);
}
