//! The library owns a push's background work (issue 26): a push made
//! through the API alone starts the re-encoding it queues, as the `reg`
//! binary's pushes do, and `wait_background` finishes it.

mod common;

use common::{blob_of, fixture, named, HEAD, SERIES};
use reg_registry::{BackgroundRunner, Config, Registry, VersionRef};

fn registry(runner: BackgroundRunner) -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::at(dir.path().join("reg"));
    config.durability = reg_store::Durability::Fast;
    let reg = Registry::open(config).expect("open").with_background(runner);
    (dir, reg)
}

/// Push the first two epochs; true when v1's trainable layer is now a
/// delta against v2's.
fn v1_head_is_a_delta(reg: &Registry) -> bool {
    let v1 = reg.resolve(&VersionRef::parse("mlp@v1").expect("ref")).expect("v1");
    let blob = blob_of(&v1.manifest, HEAD);
    reg.store().describe(blob).expect("describe").parent.is_some()
}

#[test]
fn a_library_push_starts_its_background_job_in_a_thread_and_wait_finishes_it() {
    let (_dir, reg) = registry(BackgroundRunner::Thread);
    for rel in &SERIES[..2] {
        let r = reg.push(&fixture(rel), &named("mlp")).expect("push");
        assert!(r.created);
    }
    // The job the second push started does the work with nobody asking.
    let started = std::time::Instant::now();
    while !v1_head_is_a_delta(&reg) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the library's push left its work undone"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // And the wait returns once nothing is queued.
    assert!(reg.wait_background().expect("wait").is_empty());
    assert!(reg.background_failure().is_none());
}

#[test]
fn inline_runs_before_the_push_returns_and_queue_leaves_it_for_wait() {
    let (_dir, reg) = registry(BackgroundRunner::Inline);
    for rel in &SERIES[..2] {
        reg.push(&fixture(rel), &named("mlp")).expect("push");
    }
    assert!(v1_head_is_a_delta(&reg));

    let (_dir, reg) = registry(BackgroundRunner::Queue);
    for rel in &SERIES[..2] {
        reg.push(&fixture(rel), &named("mlp")).expect("push");
    }
    assert!(!v1_head_is_a_delta(&reg), "a queue-only registry started work");
    let done = reg.wait_background().expect("wait");
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(v1_head_is_a_delta(&reg));
}
