use super::*;
use app::model::MessageStatus;

fn bucket(vhost: &str, queue: &str, group: &str, status: &str, messages: i64) -> Bucket {
    Bucket {
        vhost: vhost.into(),
        queue: queue.into(),
        service: queue.split('.').next().unwrap().into(),
        group_id: group.into(),
        status: status.into(),
        messages,
    }
}

/// Two vhosts of very different size, two services, three groups.
fn store() -> Vec<Bucket> {
    vec![
        bucket("big", "trade.error.queue", "g1", "failed", 600_000),
        bucket("big", "trade.error.queue", "g2", "failed", 300_000),
        bucket("big", "trade.error.queue", "g2", "discarded", 20),
        bucket("big", "pay.error.queue", "g3", "failed", 90_000),
        bucket("small", "pay.error.queue", "g3", "failed", 9_000),
        bucket("small", "pay.error.queue", "g1", "failed", 10),
        bucket("small", "pay.error.queue", "g3", "replayed", 990),
    ]
}

fn filter() -> Filter {
    Filter {
        visible: Some(vec!["big".into(), "small".into()]),
        ..Default::default()
    }
}

#[test]
fn no_filter_reads_the_primary_key_and_counts_everything() {
    let p = plan(&filter(), &store(), None, 51);
    assert_eq!(p.level, Level::All);
    assert_eq!((p.matching, p.stored), (1_000_020, 1_000_020));
    assert_eq!(p.residual, Residual::default(), "every vhost is visible");
}

#[test]
fn a_small_vhost_is_read_through_its_own_ranges() {
    let f = Filter {
        vhost: Some("small".into()),
        ..filter()
    };
    let p = plan(&f, &store(), None, 51);
    assert_eq!(p.level, Level::Vhost);
    assert_eq!(p.matching, 10_000);
    assert_eq!(p.arms.len(), 2, "failed and replayed: {:?}", p.arms);
    assert!(!p.residual.vhost);
}

#[test]
fn a_rare_combination_is_read_exactly_where_it_lies() {
    // g1 in the small vhost: 10 messages among a million.
    let f = Filter {
        vhost: Some("small".into()),
        group: Some("g1".into()),
        ..filter()
    };
    let p = plan(&f, &store(), None, 51);
    assert_eq!(p.level, Level::Group);
    assert_eq!(p.matching, 10);
    assert_eq!(p.residual, Residual::default());
    let f = Filter {
        status: Some(MessageStatus::Discarded),
        ..filter()
    };
    let p = plan(&f, &store(), None, 51);
    assert_eq!(p.matching, 20);
    assert!(p.level >= Level::Status, "{p:?}");
}

#[test]
fn a_filter_nothing_matches_reads_nothing() {
    let f = Filter {
        vhost: Some("small".into()),
        queue: Some("trade.error.queue".into()),
        ..filter()
    };
    let p = plan(&f, &store(), None, 51);
    assert_eq!(p.matching, 0);
    assert!(p.arms.is_empty(), "{p:?}");
    let hidden = Filter {
        visible: Some(vec![]),
        ..Default::default()
    };
    assert!(plan(&hidden, &store(), None, 51).arms.is_empty());
}

#[test]
fn visible_vhosts_restrict_only_when_some_are_hidden() {
    let f = Filter {
        visible: Some(vec!["small".into()]),
        ..Default::default()
    };
    let p = plan(&f, &store(), None, 51);
    assert_eq!(p.matching, 10_000);
    assert!(p.level >= Level::Vhost, "{p:?}");
}

#[test]
fn a_tag_reads_its_groups() {
    let tagged = ["g3".to_owned()];
    let p = plan(&filter(), &store(), Some(&tagged), 51);
    assert_eq!(p.matching, 99_990);
    assert!(p.arms.iter().all(|a| a.group.as_deref() == Some("g3")) || p.residual.tag_groups);
}

#[test]
fn messages_without_a_group_are_never_read_through_the_group_index() {
    let mut s = store();
    s.push(bucket("small", "old.dlq", "", "failed", 5));
    let f = Filter {
        vhost: Some("small".into()),
        queue: Some("old.dlq".into()),
        ..filter()
    };
    let p = plan(&f, &s, None, 51);
    assert_ne!(p.level, Level::Group);
    assert_eq!(p.matching, 5);
}

#[test]
fn a_common_word_reads_one_more_window_sized_by_its_rate() {
    // 51 wanted, 10 found in 204: about 41 × 204 / 10 × 1.5 more.
    assert_eq!(next_window(204, 10, 41), Some(1254));
    // Half the filter matches: a window of the need, at least.
    assert_eq!(next_window(204, 102, 10), Some(30));
    assert_eq!(next_window(204, 200, 1), Some(1));
}

#[test]
fn a_rare_word_goes_to_the_match_set() {
    assert_eq!(next_window(204, 0, 51), None);
    // Two in 204: about 7,500 more would be tested, over the budget.
    assert_eq!(next_window(204, 2, 49), None);
    assert_eq!(next_window(PROBE_BUDGET - 10, 1, 1), None);
}
