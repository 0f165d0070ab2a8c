//! Switching a queue's capture mode, by the operator or by a new
//! `REDRIVE_CAPTURE_MODE`, on one instance and on two: nothing lost and
//! nothing stored twice, under a steady flow and through restarts.

use std::time::Duration;

use crate::common::*;
use crate::tap::{
    assert_each_once, depth_until, set_mode, spring_topology, stored_seqs, stored_total, switches_recorded,
    tap_states, wait_for_tap, QUEUE, TAP,
};
use lapin::BasicProperties;
use testkit::spring::failure;

/// Publishes numbered failures to the service's route until told to stop;
/// returns how many.
fn steady_flow(
    mut vh: testkit::Vhost,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let ch = vh.confirming_channel().await.unwrap();
        let mut n = 0;
        while !stop.is_cancelled() {
            let batch: Vec<(Vec<u8>, BasicProperties)> = (n..n + 10).map(|i| failure(i as usize)).collect();
            testkit::publish_all(&ch, "error.direct", "trade-service", batch)
                .await
                .unwrap();
            n += 10;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        n
    })
}

/// Waits until the tap is deleted.
async fn tap_gone(vh: &TestVhost) {
    wait_until(Duration::from_secs(30), || async {
        vh.mgmt(&format!("queues/{}/{}", enc(&vh.name), enc(TAP))).await.0 == 404
    })
    .await;
}

/// Ends the steady flow and checks that each of its failures is stored
/// exactly once, some consumed and some taken back from their copies.
async fn flow_stored_once(
    app: &TestApp,
    vh: &mut TestVhost,
    db: &TestDb,
    (stop, flow): (tokio_util::sync::CancellationToken, tokio::task::JoinHandle<u64>),
) {
    stop.cancel();
    let published = flow.await.unwrap();
    eprintln!("published {published} failures under the switches");
    wait_until(Duration::from_secs(30), || async {
        stored_total(app, QUEUE).await >= published as i64
    })
    .await;
    depth_until(vh, Duration::from_secs(10), |d| d == 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seqs = stored_seqs(db).await;
    assert_each_once(&seqs, 0..published);
    assert_eq!(seqs.len() as u64, published);
    // The ways in: consumed, copied, and copies that answered for their
    // originals when Redrive took the queue back.
    let ways = tap_states(db).await;
    for way in ["consumed", "taken"] {
        assert!(ways.get(way).is_some_and(|n| *n > 0), "{ways:?}");
    }
}

#[tokio::test]
async fn switching_between_consume_and_tap_under_a_steady_flow_loses_nothing_and_stores_nothing_twice() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    spring_topology(&mut vh).await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    let row = app.queue_row(&vh.name, QUEUE).await;
    assert_eq!(row["capture_mode"], "consume");
    let publisher = testkit::Vhost::named(vh.name.clone()).await;
    let publisher = match publisher {
        Ok(p) => p,
        Err(_) => panic!("a second handle on the test vhost"),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let flow = steady_flow(publisher, stop.clone());
    let watch = format!("/api/v1/queues/{}/{}/watch", enc(&vh.name), enc(QUEUE));
    tokio::time::sleep(Duration::from_secs(2)).await;

    set_mode(&app, &watch, "tap").await;
    // The tap takes over: the queue's originals stay in it from then on.
    depth_until(&mut vh, Duration::from_secs(20), |d| d > 50).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    set_mode(&app, &watch, "consume").await;
    // Redrive takes the queue back: the tap goes, the originals are taken.
    tap_gone(&vh).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    flow_stored_once(&app, &mut vh, &db, (stop, flow)).await;
    // Switches are audited with the mode.
    let (_, audit) = app.get("/api/v1/audit?action=watch_change").await;
    assert!(audit.to_string().contains("Tap"), "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn a_switch_to_tap_cut_short_by_a_restart_resumes_at_the_same_marker() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    spring_topology(&mut vh).await;
    // A backlog ahead of the marker keeps the switch under way long enough
    // to stop Redrive in the middle of it.
    const BACKLOG: usize = 20_000;
    const FIRST: usize = 1_000_000;
    vh.inner()
        .publish_all(
            "error.direct",
            "trade-service",
            (FIRST..FIRST + BACKLOG).map(failure),
        )
        .await
        .unwrap();
    let app = TestApp::start(config(&vh, &db, &[])).await;
    app.queue_row(&vh.name, QUEUE).await;
    let publisher = testkit::Vhost::named(vh.name.clone())
        .await
        .expect("a second handle");
    let stop = tokio_util::sync::CancellationToken::new();
    let flow = steady_flow(publisher, stop.clone());
    let watch = format!("/api/v1/queues/{}/{}/watch", enc(&vh.name), enc(QUEUE));
    set_mode(&app, &watch, "tap").await;
    // Stopped as soon as the marker may be out, before the switch can finish.
    wait_until(Duration::from_secs(10), || async {
        switches_recorded(&db, Some("marker_sent")).await > 0
    })
    .await;
    app.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    depth_until(&mut vh, Duration::from_secs(20), |d| d > 50).await;
    stop.cancel();
    let published = flow.await.unwrap();
    wait_until(Duration::from_secs(60), || async {
        stored_total(&app, QUEUE).await >= (published as usize + BACKLOG) as i64
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seqs = stored_seqs(&db).await;
    assert_each_once(
        &seqs,
        (0..published).chain(FIRST as u64..(FIRST + BACKLOG) as u64),
    );
    // The resumed switch finishes: both sides pass the marker.
    wait_until(Duration::from_secs(30), || async {
        switches_recorded(&db, None).await == 0
    })
    .await;
    // The service's queue holds the originals since the cut, and no marker.
    app.stop().await;
    let depth = vh.depth(QUEUE).await as usize;
    let left = vh.drain(QUEUE, depth).await;
    let markers = left
        .iter()
        .filter(|d| {
            d.properties
                .headers()
                .as_ref()
                .is_some_and(|h| h.inner().contains_key("x-redrive-tap-marker"))
        })
        .count();
    assert_eq!(markers, 0, "a marker was left in {QUEUE}");
}

/// Stored rows, for instances without an address of their own here.
async fn rows_in(db: &TestDb) -> i64 {
    use sqlx::Row;
    let mut conn = db.raw_connection().await;
    sqlx::query("SELECT COUNT(*) FROM messages")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get::<i64, _>(0)
}

#[tokio::test]
async fn a_mode_change_records_its_switch_at_once_and_waits_for_it_to_end() {
    use app::model::CaptureMode::{Consume, Tap};
    use server::store::SwitchDirection;
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    let queues = std::collections::HashMap::from([(QUEUE.to_owned(), "error queue".to_owned())]);
    store.sync_watched("v", &queues, Consume).await.unwrap();
    // A queue Redrive does not capture has no switch: its tap starts fresh.
    assert_eq!(
        store
            .set_capture_mode("v", "other", Tap, Consume, "alice")
            .await
            .unwrap(),
        None
    );
    // A captured queue's switch is recorded with its mode, in one commit.
    let to_tap = store
        .set_capture_mode("v", QUEUE, Tap, Consume, "alice")
        .await
        .unwrap();
    assert_eq!(to_tap, Some(SwitchDirection::ToTap));
    let switches = store.capture_switches().await.unwrap();
    assert_eq!(switches.len(), 1);
    assert_eq!(switches[0].direction, SwitchDirection::ToTap);
    assert!(!switches[0].marker_sent, "no marker is out yet");
    // Asking again for the mode that is coming changes nothing; asking
    // for the other is refused until the switch ends.
    assert_eq!(
        store
            .set_capture_mode("v", QUEUE, Tap, Consume, "bob")
            .await
            .unwrap(),
        None
    );
    let refused = store.set_capture_mode("v", QUEUE, Consume, Consume, "bob").await;
    assert!(
        matches!(&refused, Err(server::store::StoreError::Conflict(m)) if m.contains("switching to tap")),
        "{refused:?}"
    );
    assert_eq!(store.capture_modes().await.unwrap()["v"][QUEUE], Tap);
    let marker = switches[0].marker.clone();
    store.capture_marker_sending("v", QUEUE, &marker).await.unwrap();
    assert!(store.capture_switches().await.unwrap()[0].marker_sent);
    for side in [server::store::SwitchSide::Source, server::store::SwitchSide::Tap] {
        store
            .capture_switch_passed("v", QUEUE, &marker, side)
            .await
            .unwrap();
    }
    assert!(
        store.capture_switches().await.unwrap().is_empty(),
        "both sides passed"
    );
    // Back: recorded the other way, and ended by the pairing window.
    let back = store
        .set_capture_mode("v", QUEUE, Consume, Consume, "bob")
        .await
        .unwrap();
    assert_eq!(back, Some(SwitchDirection::ToConsume));
    store
        .forget_capture_switch("v", QUEUE, Some(SwitchDirection::ToTap))
        .await
        .unwrap();
    assert_eq!(
        store.capture_switches().await.unwrap().len(),
        1,
        "a retired tap leaves the switch back"
    );
    store.leave_tap_originals("v", QUEUE).await.unwrap();
    assert!(store.capture_switches().await.unwrap().is_empty());
}

#[ignore = "PostgreSQL only: scripts/test runs it in its PostgreSQL pass"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_switch_a_queue_both_ways_under_a_steady_flow_exactly_once() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    assert!(
        db.is_postgres(),
        "several instances need PostgreSQL: set {POSTGRES_ENV}"
    );
    spring_topology(&mut vh).await;
    let _a = spawn_redrive(&vh, &db, &[("REDRIVE_INSTANCE_NAME", "a")]);
    let _b = spawn_redrive(&vh, &db, &[("REDRIVE_INSTANCE_NAME", "b")]);
    wait_until(Duration::from_secs(60), || async {
        vh.queue_info(QUEUE).await["consumers"].as_i64() == Some(2)
    })
    .await;
    let store = server::store::connect(&db.url()).await.unwrap();
    let publisher = testkit::Vhost::named(vh.name.clone())
        .await
        .expect("a second handle");
    let stop = tokio_util::sync::CancellationToken::new();
    let flow = steady_flow(publisher, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The operator's switches, as the API records them.
    let consume = app::model::CaptureMode::Consume;
    store
        .set_capture_mode(&vh.name, QUEUE, app::model::CaptureMode::Tap, consume, "test")
        .await
        .unwrap();
    depth_until(&mut vh, Duration::from_secs(30), |d| d > 50).await;
    wait_until(Duration::from_secs(30), || async {
        store.capture_switches().await.unwrap().is_empty()
    })
    .await;
    // Both instances capture from the tap.
    wait_until(Duration::from_secs(30), || async {
        vh.mgmt(&format!("queues/{}/{}", enc(&vh.name), enc(TAP))).await.1["consumers"].as_i64() == Some(2)
    })
    .await;
    store
        .set_capture_mode(&vh.name, QUEUE, consume, consume, "test")
        .await
        .unwrap();
    tap_gone(&vh).await;
    wait_until(Duration::from_secs(30), || async {
        store.capture_switches().await.unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let published = flow.await.unwrap();
    eprintln!("published {published} failures under the switches");
    wait_until(Duration::from_secs(60), || async {
        rows_in(&db).await >= published as i64
    })
    .await;
    depth_until(&mut vh, Duration::from_secs(20), |d| d == 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seqs = stored_seqs(&db).await;
    assert_each_once(&seqs, 0..published);
    let ways = tap_states(&db).await;
    for way in ["consumed", "taken"] {
        assert!(ways.get(way).is_some_and(|n| *n > 0), "{ways:?}");
    }
    // Back to two competing consumers of the queue.
    wait_until(Duration::from_secs(30), || async {
        vh.queue_info(QUEUE).await["consumers"].as_i64() == Some(2)
    })
    .await;
}

/// Waits until the (one) queue's mode is `mode` and no switch is under way,
/// read in one statement: a mode and its switch are committed together,
/// and two reads could see the switch's absence before it and the mode after.
async fn mode_settled(db: &TestDb, mode: &str, timeout: Duration) {
    wait_until(timeout, || async {
        use sqlx::Row;
        let mut conn = db.raw_connection().await;
        let row = sqlx::query("SELECT mode, (SELECT COUNT(*) FROM capture_switches) FROM capture_modes")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        row.get::<i64, _>(1) == 0 && row.get::<String, _>(0) == mode
    })
    .await;
}

#[tokio::test]
async fn a_new_capture_default_at_restart_switches_the_queues_that_took_it_exactly_once() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    spring_topology(&mut vh).await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    assert_eq!(app.queue_row(&vh.name, QUEUE).await["capture_mode"], "consume");
    let publisher = testkit::Vhost::named(vh.name.clone())
        .await
        .expect("a second handle");
    let stop = tokio_util::sync::CancellationToken::new();
    let flow = steady_flow(publisher, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Restarted with the other default: the queue, whose mode came from
    // the default, switches to tap with its switch recorded.
    app.stop().await;
    let app = TestApp::start(config(&vh, &db, &["--capture-mode=tap"])).await;
    mode_settled(&db, "tap", Duration::from_secs(30)).await;
    depth_until(&mut vh, Duration::from_secs(20), |d| d > 50).await;
    // And back, the same way.
    app.stop().await;
    let app = TestApp::start(config(&vh, &db, &["--capture-mode=consume"])).await;
    tap_gone(&vh).await;
    mode_settled(&db, "consume", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    flow_stored_once(&app, &mut vh, &db, (stop, flow)).await;
    // Each switch is audited under the setting's name.
    let (_, audit) = app.get("/api/v1/audit?action=watch_change").await;
    let entries = audit.to_string();
    assert!(
        entries.contains("mode tap (REDRIVE_CAPTURE_MODE changed)"),
        "{audit}"
    );
    assert!(
        entries.contains("mode consume (REDRIVE_CAPTURE_MODE changed)"),
        "{audit}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_new_capture_default_leaves_the_operators_choices_alone() {
    use app::model::CaptureMode::{Consume, Tap};
    use server::store::{DefaultApplied, SwitchDirection, SwitchSide};
    let none = DefaultApplied::Switched(Vec::new());
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    assert_eq!(
        store.apply_capture_default(Consume).await.unwrap(),
        none,
        "a first start"
    );
    let queues = std::collections::HashMap::from([
        ("a.error.queue".to_owned(), "error queue".to_owned()),
        ("b.error.queue".to_owned(), "error queue".to_owned()),
    ]);
    store.sync_watched("v", &queues, Consume).await.unwrap();
    // b's mode is an operator's, even though it is the default's value.
    store
        .set_capture_mode("v", "b.error.queue", Consume, Consume, "alice")
        .await
        .unwrap();
    assert_eq!(store.apply_capture_default(Consume).await.unwrap(), none);
    let switched = store.apply_capture_default(Tap).await.unwrap();
    assert_eq!(
        switched,
        DefaultApplied::Switched(vec![(
            "v".to_owned(),
            "a.error.queue".to_owned(),
            SwitchDirection::ToTap
        )])
    );
    let modes = store.capture_modes().await.unwrap();
    assert_eq!(modes["v"]["a.error.queue"], Tap);
    assert_eq!(modes["v"]["b.error.queue"], Consume);
    assert_eq!(store.capture_switches().await.unwrap().len(), 1);
    // Applied once: a second instance starting with the same setting does nothing.
    assert_eq!(store.apply_capture_default(Tap).await.unwrap(), none);
    // A restart with the old default while a's switch is under way waits
    // for it, changing nothing: applied now, a would stay in tap for good.
    assert_eq!(
        store.apply_capture_default(Consume).await.unwrap(),
        DefaultApplied::Waiting
    );
    assert_eq!(store.capture_modes().await.unwrap()["v"]["a.error.queue"], Tap);
    assert_eq!(
        store.apply_capture_default(Tap).await.unwrap(),
        none,
        "tap is still the default applied"
    );
    let marker = store.capture_switches().await.unwrap()[0].marker.clone();
    store
        .capture_marker_sending("v", "a.error.queue", &marker)
        .await
        .unwrap();
    for side in [SwitchSide::Source, SwitchSide::Tap] {
        store
            .capture_switch_passed("v", "a.error.queue", &marker, side)
            .await
            .unwrap();
    }
    // The switch ended: the change the restart asked for is applied.
    assert_eq!(
        store.apply_capture_default(Consume).await.unwrap(),
        DefaultApplied::Switched(vec![(
            "v".to_owned(),
            "a.error.queue".to_owned(),
            SwitchDirection::ToConsume
        )])
    );
    let modes = store.capture_modes().await.unwrap();
    assert_eq!(modes["v"]["a.error.queue"], Consume);
    assert_eq!(modes["v"]["b.error.queue"], Consume);
}

#[tokio::test]
async fn a_switch_back_cut_short_by_a_restart_pairs_every_original_once() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    spring_topology(&mut vh).await;
    let app = TestApp::start(config(&vh, &db, &["--capture-mode=tap"])).await;
    wait_for_tap(&vh, &[("error.direct", "trade-service")]).await;
    // A backlog of copies whose originals wait in the queue keeps the
    // pairing under way long enough to stop Redrive in the middle of it.
    const BACKLOG: usize = 5_000;
    vh.inner()
        .publish_all("error.direct", "trade-service", (0..BACKLOG).map(failure))
        .await
        .unwrap();
    wait_until(Duration::from_secs(60), || async {
        stored_total(&app, QUEUE).await >= BACKLOG as i64
    })
    .await;
    assert_eq!(vh.depth(QUEUE).await as usize, BACKLOG);
    let watch = format!("/api/v1/queues/{}/{}/watch", enc(&vh.name), enc(QUEUE));
    set_mode(&app, &watch, "consume").await;
    // Stopped once the marker that ends pairing may be out.
    wait_until(Duration::from_secs(30), || async {
        switches_recorded(&db, Some("direction = 'to_consume' AND marker_sent")).await > 0
    })
    .await;
    app.stop().await;
    let before = tap_states(&db).await;
    eprintln!("stopped with {before:?} and {} in {QUEUE}", vh.depth(QUEUE).await);
    assert!(
        before.get("in_queue").is_some_and(|n| *n > 0),
        "stopped before pairing ended: {before:?}"
    );
    let app = TestApp::start(config(&vh, &db, &["--capture-mode=tap"])).await;
    let resumed = std::time::Instant::now();
    mode_settled(&db, "consume", Duration::from_secs(180)).await;
    eprintln!("the resumed pairing took {:?}", resumed.elapsed());
    depth_until(&mut vh, Duration::from_secs(60), |d| d == 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Every original answered for by its copy: one row each, all taken.
    let seqs = stored_seqs(&db).await;
    assert_each_once(&seqs, 0..BACKLOG as u64);
    let ways = tap_states(&db).await;
    assert_eq!(ways.get("taken"), Some(&(BACKLOG as i64)), "{ways:?}");
    app.stop().await;
}
