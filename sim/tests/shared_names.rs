//! Client ids, partitions and message labels are shared handles: a copy shares its text,
//! and everything written of them (JSON, `Debug`, `Display`, order) reads as the plain
//! values they replaced, so that no trace byte and no trace hash depends on the sharing.

use oversell_sim::{ClientId, Event, Label, Peer, TopicPartition};
use std::cmp::Ordering;

#[test]
fn a_copied_client_id_shares_its_names() {
    let a = ClientId::new("product-service-0", "product-checker");
    let b = a.clone();
    assert_eq!(a.instance.as_ptr(), b.instance.as_ptr());
    assert_eq!(a.app.as_ptr(), b.app.as_ptr());
    assert_eq!(
        format!("{a:?}"),
        r#"ClientId { instance: "product-service-0", app: "product-checker" }"#
    );
    assert_eq!(a.to_string(), "product-service-0/product-checker");
}

#[test]
fn client_ids_order_by_instance_then_app() {
    let ids = [
        ClientId::new("a", "z"),
        ClientId::new("b", "a"),
        ClientId::new("b", "b"),
    ];
    for (i, x) in ids.iter().enumerate() {
        for (j, y) in ids.iter().enumerate() {
            assert_eq!(x.cmp(y), i.cmp(&j), "{x} against {y}");
        }
    }
    assert_eq!(ids[1], ClientId::new("b", "a"));
}

#[test]
fn a_copied_partition_shares_its_topic() {
    let tp = TopicPartition::new("orders", 3);
    let copy = tp.clone();
    assert_eq!(tp.topic.as_ptr(), copy.topic.as_ptr());
    assert_eq!(copy.partition, 3);
    assert_eq!(
        format!("{tp:?}"),
        r#"TopicPartition { topic: "orders", partition: 3 }"#
    );
    let json = serde_json::to_string(&tp).unwrap();
    assert_eq!(json, r#"{"topic":"orders","partition":3}"#);
    assert_eq!(serde_json::from_str::<TopicPartition>(&json).unwrap(), tp);
}

#[test]
fn partitions_order_by_topic_then_partition() {
    let tps = [
        TopicPartition::new("orders", 0),
        TopicPartition::new("orders", 10),
        TopicPartition::new("orders-x", 0),
        TopicPartition::new("p", 1),
    ];
    for (i, x) in tps.iter().enumerate() {
        for (j, y) in tps.iter().enumerate() {
            assert_eq!(x.cmp(y), i.cmp(&j), "{x} against {y}");
            assert_eq!(x.cmp(&y.clone()), i.cmp(&j), "{x} against a copy of {y}");
        }
    }
    assert_eq!(
        tps[1].cmp(&TopicPartition::new("orders", 10)),
        Ordering::Equal
    );
}

#[test]
fn a_reply_label_is_written_with_its_prefix() {
    let request = Label::from("Fetch[orders-0@3]".to_string());
    let reply = request.reply();
    assert_eq!(reply.to_string(), "re:Fetch[orders-0@3]");
    assert_eq!(format!("{reply:?}"), r#""re:Fetch[orders-0@3]""#);
    assert_eq!(reply, Label::from("re:Fetch[orders-0@3]"));
    assert_eq!(reply, "re:Fetch[orders-0@3]");
    assert_ne!(reply, request);
    assert_eq!(
        reply.with_note("receiver gone").to_string(),
        "re:Fetch[orders-0@3] (receiver gone)"
    );
    let event = Event::Deliver {
        id: 7,
        from: Peer::Broker,
        to: Peer::Client(ClientId::new("i0", "app")),
        what: reply,
    };
    let json = serde_json::to_string(&event).unwrap();
    assert_eq!(
        json,
        r#"{"event":"deliver","id":7,"from":"broker","to":"i0/app","what":"re:Fetch[orders-0@3]"}"#
    );
    assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
}

#[test]
fn a_request_label_written_when_read_reads_as_its_text() {
    let fetch = Label::fetch(TopicPartition::new("orders", 0), 3);
    let produce = Label::produce([
        (TopicPartition::new("orders", 0), 1),
        (TopicPartition::new("stock", 2), 2),
    ]);
    let end = Label::name("EndTxn[commit]");
    let quoted = Label::fetch(TopicPartition::new("a\"b\\c", 1), 0);
    let cases = [
        (fetch, "Fetch[orders-0@3]"),
        (produce, "Produce[orders-0x1,stock-2x2]"),
        (end, "EndTxn[commit]"),
        (quoted, "Fetch[a\"b\\c-1@0]"),
    ];
    for (label, text) in cases {
        let written = Label::from(text);
        for (lazy, plain) in [
            (label.clone(), written.clone()),
            (label.reply(), written.reply()),
        ] {
            let shown = plain.to_string();
            assert_eq!(lazy.to_string(), shown);
            assert_eq!(format!("{lazy:?}"), format!("{plain:?}"));
            assert_eq!(
                serde_json::to_string(&lazy).unwrap(),
                serde_json::to_string(&plain).unwrap()
            );
            assert_eq!(lazy, plain);
            assert_eq!(plain, lazy);
            assert_eq!(lazy, shown.as_str());
            assert_ne!(lazy, format!("{shown}0").as_str());
            assert_ne!(lazy, &shown[..shown.len() - 1]);
            assert_ne!(lazy, "");
            assert_eq!(
                lazy.with_note("receiver gone").to_string(),
                format!("{shown} (receiver gone)")
            );
        }
        assert_ne!(label, label.reply());
        assert_ne!(label, format!("re:{text}").as_str());
    }
    assert_ne!(
        Label::fetch(TopicPartition::new("orders", 0), 3),
        Label::fetch(TopicPartition::new("orders", 0), 4)
    );
}
