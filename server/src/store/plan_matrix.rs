//! The list's filter matrix for the plan tests of both backends: every
//! combination of its filters over a skewed store, so each backend's test
//! checks the same cells (`sqlite/plans.rs`, `postgres/plans.rs`).

use app::model::MessageQuery;

/// A skewed store as SQL: 20,000 messages, 90 % in vhost `big`, a quarter
/// from service `pay`, three groups, a few replayed and discarded, a tag on
/// a group and on two single messages. `hash` is the backend's expression
/// for 16 random bytes. Planning reads only the counts, so no text is
/// indexed (`tests/it/browse.rs` checks the pages' contents).
pub(crate) fn skewed(hash: &str) -> [String; 2] {
    [
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO messages (vhost, queue, service, group_id, status, received_at,
                delivery_exchange, delivery_routing_key, content_hash)
             SELECT CASE WHEN i % 10 = 0 THEN 'small' ELSE 'big' END,
                    CASE WHEN i % 4 = 0 THEN 'pay.error.queue' ELSE 'trade.error.queue' END,
                    CASE WHEN i % 4 = 0 THEN 'pay' ELSE 'trade' END,
                    'g' || (i % 3),
                    CASE WHEN i % 97 = 0 THEN 'discarded' WHEN i % 89 = 0 THEN 'replayed' ELSE 'failed' END,
                    1000 * i, 'error.direct', 'x', {hash} FROM n"
        ),
        "INSERT INTO annotations (target_kind, target_id, kind, text, actor, at)
         VALUES ('group', 'g2', 'tag', 'hot', 't', 0), ('message', '7', 'tag', 'hot', 't', 0),
                ('message', '19990', 'tag', 'hot', 't', 0)"
            .to_owned(),
    ]
}

/// Every combination of the list's filters, as operators send them: name,
/// query, the signed-in user's visible vhosts.
pub(crate) fn matrix() -> Vec<(String, MessageQuery, Option<Vec<String>>)> {
    let mut out = Vec::new();
    for bits in 0u32..256 {
        let on = |bit: u32| bits & (1 << bit) != 0;
        let q = MessageQuery {
            vhost: on(0).then(|| "small".to_owned()),
            queue: on(1).then(|| "pay.error.queue".to_owned()),
            service: on(2).then(|| "pay".to_owned()),
            group: on(3).then(|| "g1".to_owned()),
            tag: on(4).then(|| "hot".to_owned()),
            status: on(5).then(|| "failed".to_owned()),
            from: on(6).then(|| "1970-01-01T00:00:05Z".to_owned()),
            to: on(6).then(|| "1970-01-01T01:00:00Z".to_owned()),
            ..Default::default()
        };
        let visible = if on(7) {
            vec!["small".to_owned()]
        } else {
            vec!["big".to_owned(), "small".to_owned()]
        };
        let name = [
            "vhost", "queue", "service", "group", "tag", "status", "from/to", "visible",
        ]
        .iter()
        .enumerate()
        .filter(|(i, _)| on(*i as u32))
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join("+");
        out.push((name, q, Some(visible)));
    }
    out
}
