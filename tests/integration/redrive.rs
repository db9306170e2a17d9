//! DLQ redrive against moto: depth, peeking without consuming, and moving
//! messages back to their source queue with bodies and attributes intact.
//!
//! moto has no StartMessageMoveTask (it answers with a bare HTML 500 page),
//! so every move here takes the receive/send/delete fallback.

use std::collections::{BTreeMap, HashSet};
use switchyard_aws::aws_sdk_sqs;
use switchyard_aws::aws_sdk_sqs::primitives::Blob;
use switchyard_aws::aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use switchyard_aws::redrive::{self, DlqPair, METHOD_RECEIVE_SEND_DELETE};
use switchyard_tests::Stack;

/// A message's attributes, comparable: name -> (data type, text value, binary value).
type Attributes = BTreeMap<String, (String, Option<String>, Option<Vec<u8>>)>;

fn attribute(data_type: &str, text: Option<&str>, binary: Option<&[u8]>) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .set_string_value(text.map(str::to_owned))
        .set_binary_value(binary.map(Blob::new))
        .build()
        .unwrap()
}

fn comparable(attrs: Option<&std::collections::HashMap<String, MessageAttributeValue>>) -> Attributes {
    attrs
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let binary = v.binary_value().map(|b| b.as_ref().to_vec());
            (
                k.clone(),
                (v.data_type().to_owned(), v.string_value().map(str::to_owned), binary),
            )
        })
        .collect()
}

/// The 23 messages: every third with String, Number, Binary and custom-typed
/// attributes; the last two with the same body.
fn messages() -> Vec<(String, Vec<(String, MessageAttributeValue)>)> {
    (0..23u8)
        .map(|i| {
            let body = if i >= 21 {
                r#"{"same":"body"}"#.to_owned()
            } else {
                format!(r#"{{"n":{i}}}"#)
            };
            let attrs = if i % 3 == 0 {
                vec![
                    ("kind".to_owned(), attribute("String", Some(&format!("k{i}")), None)),
                    ("n".to_owned(), attribute("Number", Some(&i.to_string()), None)),
                    ("raw".to_owned(), attribute("Binary", None, Some(&[i, 0xff, 0]))),
                    ("tag".to_owned(), attribute("String.custom", Some("t"), None)),
                ]
            } else {
                vec![]
            };
            (body, attrs)
        })
        .collect()
}

/// Receives every message of a queue, hidden for 30 s: (id, receipt handle, body, attributes).
async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<(String, String, String, Attributes)> {
    let mut all = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        let msgs = out.messages.unwrap_or_default();
        if msgs.is_empty() {
            return all;
        }
        for m in msgs {
            all.push((
                m.message_id().unwrap().to_owned(),
                m.receipt_handle().unwrap().to_owned(),
                m.body().unwrap().to_owned(),
                comparable(m.message_attributes()),
            ));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_depth_peek_and_move_back() {
    let stack = Stack::new("redrive").await;
    let sqs = &stack.sqs;
    let pair = DlqPair {
        name: "deliveries".into(),
        dlq_url: stack.res.deliveries_dlq_url.clone(),
        source_url: stack.res.deliveries_queue_url.clone(),
        replay: Default::default(),
    };
    let sent = messages();
    for (n, chunk) in sent.chunks(10).enumerate() {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, (body, attrs))| {
                let mut e = SendMessageBatchRequestEntry::builder()
                    .id(format!("m{n}-{i}"))
                    .message_body(body);
                for (k, v) in attrs {
                    e = e.message_attributes(k, v.clone());
                }
                e.build().unwrap()
            })
            .collect();
        let out = sqs
            .send_message_batch()
            .queue_url(&pair.dlq_url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
        assert!(out.failed().is_empty(), "{:?}", out.failed());
    }
    let mut expected: Vec<(String, Attributes)> = sent
        .iter()
        .map(|(body, attrs)| {
            let map = attrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            (body.clone(), comparable(Some(&map)))
        })
        .collect();
    expected.sort();

    // Depth.
    let depth = redrive::queue_depth(sqs, &pair.name, &pair.dlq_url).await.unwrap();
    assert_eq!(
        depth,
        redrive::QueueDepth {
            name: "deliveries".into(),
            visible: 23,
            in_flight: 0,
            delayed: 0,
            oldest_age_secs: None
        }
    );

    // Peek: five messages, none consumed, all visible again at once.
    assert!(redrive::peek(sqs, &pair.dlq_url, 0).await.is_err());
    assert!(redrive::peek(sqs, &pair.dlq_url, 11).await.is_err());
    let peeked = redrive::peek(sqs, &pair.dlq_url, 5).await.unwrap();
    assert_eq!(peeked.len(), 5);
    let peeked_ids: HashSet<String> = peeked.iter().map(|p| p.message_id.clone()).collect();
    assert_eq!(peeked_ids.len(), 5);
    for p in &peeked {
        let (_, attrs) = sent
            .iter()
            .find(|(body, _)| *body == p.body)
            .expect("a body that was sent");
        assert!(p.receive_count >= 1, "{p:?}");
        let sent_at = p.sent_at.as_deref().expect("SentTimestamp");
        switchyard_core::time_util::parse_rfc3339(sent_at).unwrap();
        let text: BTreeMap<String, String> = attrs
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned())))
            .collect();
        assert_eq!(p.attributes, text, "text attributes only: {p:?}");
    }
    let depth = redrive::queue_depth(sqs, &pair.name, &pair.dlq_url).await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (23, 0), "peeking consumed nothing");
    let everything = receive_all(sqs, &pair.dlq_url).await;
    assert_eq!(everything.len(), 23);
    let ids: HashSet<String> = everything.iter().map(|(id, ..)| id.clone()).collect();
    assert!(
        peeked_ids.is_subset(&ids),
        "the peeked messages can be received again at once"
    );
    for (_, handle, ..) in &everything {
        sqs.change_message_visibility()
            .queue_url(&pair.dlq_url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(stack.depth(&pair.dlq_url).await, 23);

    // Move ten, then the rest (moto lacks StartMessageMoveTask: the fallback).
    let first = redrive::move_messages(sqs, &pair, Some(10)).await.unwrap();
    assert_eq!(first.moved, 10);
    assert_eq!(first.method, METHOD_RECEIVE_SEND_DELETE);
    assert_eq!(first.task_handle, None);
    assert_eq!(stack.depth(&pair.dlq_url).await, 13);
    assert_eq!(stack.depth(&pair.source_url).await, 10);

    let rest = redrive::move_messages(sqs, &pair, None).await.unwrap();
    assert_eq!(rest.moved, 13);
    assert_eq!(rest.method, METHOD_RECEIVE_SEND_DELETE);
    assert_eq!(rest.task_handle, None);
    assert_eq!(stack.depth(&pair.dlq_url).await, 0);
    assert_eq!(stack.depth(&pair.source_url).await, 23);

    // The source queue holds the same messages: bodies (as a multiset) and attributes.
    let mut arrived: Vec<(String, Attributes)> = receive_all(sqs, &pair.source_url)
        .await
        .into_iter()
        .map(|(_, _, body, attrs)| (body, attrs))
        .collect();
    arrived.sort();
    assert_eq!(arrived, expected);

    // An empty DLQ: nothing to move.
    let none = redrive::move_messages(sqs, &pair, None).await.unwrap();
    assert_eq!(none.moved, 0);
    let none = redrive::move_messages(sqs, &pair, Some(5)).await.unwrap();
    assert_eq!(none.moved, 0);

    // A DLQ that does not exist is a permanent error.
    let missing = DlqPair {
        dlq_url: format!("{}-nope", pair.dlq_url),
        ..pair.clone()
    };
    let err = redrive::move_messages(sqs, &missing, None).await.unwrap_err();
    assert!(!err.retryable, "{err}");
    let err = redrive::move_messages(sqs, &missing, Some(3)).await.unwrap_err();
    assert!(!err.retryable, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_dlq_moves_back_with_its_groups_in_order() {
    use switchyard_aws::aws_sdk_sqs::types::QueueAttributeName;
    use switchyard_local::resources::create_queue;
    let stack = Stack::new("redrive-fifo").await;
    let sqs = &stack.sqs;
    let fifo = [(QueueAttributeName::FifoQueue, "true".to_owned())];
    let prefix = &stack.res.prefix;
    let pair = DlqPair {
        name: "fifo".into(),
        dlq_url: create_queue(sqs, &format!("{prefix}-f-dlq.fifo"), &fifo).await.unwrap(),
        source_url: create_queue(sqs, &format!("{prefix}-f.fifo"), &fifo).await.unwrap(),
        replay: Default::default(),
    };
    for i in 0..12 {
        sqs.send_message()
            .queue_url(&pair.dlq_url)
            .message_body(format!("{}-{i}", i % 2))
            .message_group_id(format!("g{}", i % 2))
            .message_deduplication_id(format!("d{i}"))
            .send()
            .await
            .unwrap();
    }
    let moved = redrive::move_messages(sqs, &pair, None).await.unwrap();
    assert_eq!((moved.moved, moved.method), (12, METHOD_RECEIVE_SEND_DELETE));
    assert_eq!(stack.depth(&pair.dlq_url).await, 0);

    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&pair.source_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .unwrap();
        let msgs = out.messages.unwrap_or_default();
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            let group =
                m.attributes().unwrap()[&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId].clone();
            by_group.entry(group).or_default().push(m.body().unwrap().to_owned());
            sqs.delete_message()
                .queue_url(&pair.source_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    let want = |g: usize| {
        (0..12)
            .filter(|i| i % 2 == g)
            .map(|i| format!("{g}-{i}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by_group,
        BTreeMap::from([("g0".into(), want(0)), ("g1".into(), want(1))])
    );
}
