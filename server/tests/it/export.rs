//! Export (JSON Lines, CSV) and `redrive import` round trip, byte for byte.

use crate::common::*;
use lapin::types::AMQPValue;
use lapin::BasicProperties;

fn originals() -> Vec<(Vec<u8>, BasicProperties)> {
    (0..3u8)
        .map(|i| {
            let props = BasicProperties::default()
                .with_message_id(format!("x-{i}").into())
                .with_content_type("application/octet-stream".into())
                .with_priority(i)
                .with_headers(headers(&[
                    ("x-exception-message", s("=cmd|' /C calc'!A0, \"quoted\"")),
                    ("n", AMQPValue::ShortShortUInt(i)),
                    ("raw", AMQPValue::ByteArray(vec![0, 255, i].into())),
                ]));
            (vec![0xff, 0x00, i, b'\n'], props)
        })
        .collect()
}

#[tokio::test]
async fn export_then_import_republishes_identical_messages() {
    let (mut vh, _db, app) = with_queues(&["exp.dlq", "restored"], &[]).await;
    for (body, props) in originals() {
        vh.publish("", "exp.dlq", &body, props).await;
    }
    app.wait_for_messages("exp.dlq", 3).await;

    let get = |path: String| {
        let http = app.http.clone();
        async move {
            let r = http.get(path).send().await.unwrap();
            let status = r.status().as_u16();
            let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
            (status, ct, r.text().await.unwrap())
        }
    };
    let (status, ct, jsonl) = get(format!("{}/api/v1/messages/export?queue=exp.dlq", app.base)).await;
    assert_eq!(status, 200);
    assert_eq!(ct, "application/x-ndjson");
    assert_eq!(jsonl.lines().count(), 3);
    let (_, ct, csv) = get(format!(
        "{}/api/v1/messages/export?format=csv&queue=exp.dlq",
        app.base
    ))
    .await;
    assert!(ct.starts_with("text/csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,status,received_at,vhost,queue,service,exchange,routing_key,reason"
    );
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(
        lines[1].ends_with(r#""'=cmd|' /C calc'!A0, ""quoted""""#),
        "{}",
        lines[1]
    );
    let (status, _, _) = get(format!("{}/api/v1/messages/export?format=xml", app.base)).await;
    assert_eq!(status, 400);

    let dir = std::env::temp_dir().join(random_name("redrive-export"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("export.jsonl");
    std::fs::write(&file, &jsonl).unwrap();
    let (url, vhost) = (vh.amqp_url(), vh.name.clone());
    let import = |file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_redrive"))
            .env("REDRIVE_AMQP_URL", &url)
            .args([
                "import",
                file.to_str().unwrap(),
                "--vhost",
                &vhost,
                "--routing-key",
                "restored",
            ])
            .output()
            .unwrap()
    };
    let out = import(&file);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut restored: Vec<_> = vh
        .drain("restored", 3)
        .await
        .into_iter()
        .map(|d| (d.data, d.properties))
        .collect();
    restored.sort_by_key(|(_, p)| p.message_id().clone().unwrap().to_string());
    for ((body, props), (rbody, rprops)) in originals().into_iter().zip(restored) {
        assert_eq!(rbody, body);
        assert_eq!(
            rprops, props,
            "properties and typed headers survive the round trip"
        );
    }

    // A bad file is refused whole: nothing is published.
    std::fs::write(&file, format!("{}\nnot json\n", jsonl.lines().next().unwrap())).unwrap();
    let out = import(&file);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    assert_eq!(vh.depth("restored").await, 0);
    let _ = std::fs::remove_dir_all(dir);
    app.stop().await;
}
