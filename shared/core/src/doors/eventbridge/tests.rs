use super::*;
use serde_json::json;

#[test]
fn the_event_is_found_in_either_kind_of_dead_letter() {
    let event = json!({"id": "e-1", "source": "aws.s3", "detail-type": "Object Created", "detail": {"k": 1}});
    let raw = event.to_string();
    assert_eq!(dead_lettered_service_event(&raw).as_deref(), Some(raw.as_str()));
    let record = json!({
        "version": "1.0",
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": event,
        "responsePayload": {"errorType": "NoTenantForEvent"},
    });
    let found: Value = serde_json::from_str(&dead_lettered_service_event(&record.to_string()).unwrap()).unwrap();
    assert_eq!(found, event);
    for other in [
        "not json".to_string(),
        json!({"source": "aws.s3", "detail-type": "x"}).to_string(),
        json!({"requestPayload": event}).to_string(),
        json!({"requestContext": {}, "requestPayload": {"Records": []}}).to_string(),
        json!([event]).to_string(),
    ] {
        assert_eq!(dead_lettered_service_event(&other), None, "{other}");
    }
}

fn now() -> OffsetDateTime {
    crate::time_util::parse_rfc3339("2026-11-29T10:00:00Z").unwrap()
}

fn t(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn s3_event() -> Value {
    json!({
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-29T09:59:58Z",
        "region": "us-east-1",
        "resources": ["arn:aws:s3:::acme-uploads"],
        "detail": {
            "version": "0",
            "bucket": { "name": "acme-uploads" },
            "object": { "key": "invoices/42.pdf", "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184" },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "reason": "PutObject"
        }
    })
}

fn rules() -> TenantRules {
    TenantRules::parse(
        Some(
            r#"[{"source":"aws.s3","resource_prefix":"arn:aws:s3:::acme-*","tenant":"acme"},
                {"resource_prefix":"arn:aws:s3:::globex","tenant":"globex"},
                {"source":"aws.ec2","tenant":"ops"}]"#,
        ),
        None,
    )
    .unwrap()
}

fn parse(v: &Value, rules: &TenantRules) -> Result<Envelope, ServiceEventError> {
    parse_service_event(v.to_string().as_bytes(), rules, IngestLimits::default(), now())
}

#[test]
fn detail_types_are_normalised_to_dotted_event_types() {
    let cases = [
        ("aws.s3", "Object Created", "aws.s3.object_created"),
        ("aws.s3", "Object Deleted", "aws.s3.object_deleted"),
        (
            "aws.ec2",
            "EC2 Instance State-change Notification",
            "aws.ec2.ec2_instance_state_change_notification",
        ),
        (
            "aws.codepipeline",
            "CodePipeline Pipeline Execution State Change",
            "aws.codepipeline.codepipeline_pipeline_execution_state_change",
        ),
        ("com.Acme.Shop", "order.placed", "com.acme.shop.order_placed"),
        ("aws.s3", "  Object -- Created!! ", "aws.s3.object_created"),
        ("aws.s3", "snake_case_kept", "aws.s3.snake_case_kept"),
        ("aws.s3", "Ünïcode Thing", "aws.s3.n_code_thing"),
    ];
    for (source, detail_type, want) in cases {
        assert_eq!(
            normalise_type(source, detail_type).unwrap().as_str(),
            want,
            "{source} + {detail_type}"
        );
    }
    for (source, detail_type) in [("aws.s3", "!!!"), ("aws..s3", "Object Created"), ("aws.s3", "")] {
        let err = normalise_type(source, detail_type).unwrap_err();
        assert_eq!(err.field(), Some("detail-type"), "{source} + {detail_type}");
    }
    let long = "x".repeat(200);
    assert!(normalise_type("aws.s3", &long).is_err(), "longer than 128 characters");
}

#[test]
fn an_s3_object_created_event_becomes_an_envelope() {
    let e = parse(&s3_event(), &rules()).unwrap();
    assert_eq!(e.id.as_str(), "17793124-05d4-b198-2fde-7ededc63b103");
    assert_eq!(e.event_type.as_str(), "aws.s3.object_created");
    assert_eq!(e.source.as_str(), "aws.s3");
    assert_eq!(e.tenant_id, t("acme"));
    assert_eq!(crate::time_util::rfc3339(e.timestamp), "2026-11-29T09:59:58Z");
    assert_eq!(e.data["object"]["key"], "invoices/42.pdf");
    assert_eq!(e.version.as_str(), "1.0");
    assert_eq!(e.routing, crate::Routing::default());
    // The detail keeps its key order.
    let keys: Vec<_> = e.data.keys().cloned().collect();
    assert_eq!(
        keys,
        ["version", "bucket", "object", "request-id", "requester", "reason"]
    );
}

#[test]
fn detail_must_be_an_object() {
    for detail in [json!([1]), json!("x"), json!(null), json!(3)] {
        let mut ev = s3_event();
        ev["detail"] = detail.clone();
        let err = parse(&ev, &rules()).unwrap_err();
        assert_eq!(
            err,
            ServiceEventError::Invalid(EnvelopeError::Invalid {
                field: "detail",
                reason: "must be a JSON object".into()
            }),
            "{detail}"
        );
    }
    let mut ev = s3_event();
    ev.as_object_mut().unwrap().remove("detail");
    assert_eq!(
        parse(&ev, &rules()).unwrap_err(),
        ServiceEventError::Invalid(EnvelopeError::Missing("detail"))
    );
}

#[test]
fn bad_events_are_refused() {
    let cases: &[(&str, Value, &str)] = &[
        ("id", json!("a b"), "invalid_field"),
        ("id", json!(null), "missing_field"),
        ("source", json!("bad source"), "invalid_field"),
        ("source", json!(null), "missing_field"),
        ("detail-type", json!(null), "missing_field"),
        ("detail-type", json!("???"), "invalid_field"),
        ("time", json!("yesterday"), "invalid_field"),
        ("time", json!(5), "invalid_json"),
    ];
    for (field, value, code) in cases {
        let mut ev = s3_event();
        ev[*field] = value.clone();
        match parse(&ev, &rules()) {
            Err(ServiceEventError::Invalid(e)) => assert_eq!(e.code(), *code, "{field}={value}: {e}"),
            other => panic!("{field}={value}: {other:?}"),
        }
    }
    for body in ["", "[]", "{", "null"] {
        let err = parse_service_event(body.as_bytes(), &rules(), IngestLimits::default(), now()).unwrap_err();
        assert!(
            matches!(err, ServiceEventError::Invalid(EnvelopeError::Malformed(_))),
            "{body}"
        );
    }
    let small = IngestLimits { max_body_bytes: 100 };
    let body = s3_event().to_string();
    assert_eq!(
        parse_service_event(body.as_bytes(), &rules(), small, now()).unwrap_err(),
        ServiceEventError::Invalid(EnvelopeError::TooLarge {
            limit: 100,
            actual: body.len()
        })
    );
}

#[test]
fn the_first_matching_rule_names_the_tenant() {
    let r = rules();
    let res = |a: &str| vec![a.to_string()];
    assert_eq!(
        r.tenant_for("aws.s3", &res("arn:aws:s3:::acme-uploads")),
        Some(&t("acme"))
    );
    // Source matches rule 1 but the resource does not; rule 2 matches on the resource alone.
    assert_eq!(
        r.tenant_for("aws.s3", &res("arn:aws:s3:::globex/data/1.csv")),
        Some(&t("globex"))
    );
    assert_eq!(r.tenant_for("aws.s3", &res("arn:aws:s3:::initech")), None);
    assert_eq!(r.tenant_for("aws.ec2", &[]), Some(&t("ops")));
    // Any of the resources may match.
    assert_eq!(
        r.tenant_for("aws.s3", &["arn:aws:s3:::x".into(), "arn:aws:s3:::acme-2".into()]),
        Some(&t("acme"))
    );
    // Order matters: the first match wins.
    let both = TenantRules::parse(
        Some(r#"[{"source":"aws.s3","tenant":"first"},{"source":"aws.s3","tenant":"second"}]"#),
        None,
    )
    .unwrap();
    assert_eq!(both.tenant_for("aws.s3", &[]), Some(&t("first")));
    // The default catches the rest.
    let with_default = TenantRules::parse(Some(r#"[{"source":"aws.ec2","tenant":"ops"}]"#), Some("shared")).unwrap();
    assert_eq!(with_default.tenant_for("aws.s3", &[]), Some(&t("shared")));
    assert_eq!(with_default.tenant_for("aws.ec2", &[]), Some(&t("ops")));
    assert_eq!(TenantRules::parse(None, Some(" ")).unwrap(), TenantRules::default());
}

#[test]
fn resources_match_on_arn_boundaries_not_as_plain_prefixes() {
    let r = TenantRules::parse(
        Some(r#"[{"resource_prefix":"arn:aws:s3:::bucket-a","tenant":"a"},{"resource_prefix":"arn:aws:s3:::team-*","tenant":"team"}]"#),
        None,
    )
    .unwrap();
    let of = |arn: &str| r.tenant_for("aws.s3", &[arn.to_string()]).cloned();
    assert_eq!(of("arn:aws:s3:::bucket-a"), Some(t("a")));
    assert_eq!(of("arn:aws:s3:::bucket-a/key/x.pdf"), Some(t("a")));
    assert_eq!(of("arn:aws:s3:::bucket-ab"), None, "another tenant's bucket");
    assert_eq!(of("arn:aws:s3:::bucket-a-old"), None);
    // A trailing `*` says "prefix" out loud.
    assert_eq!(of("arn:aws:s3:::team-x"), Some(t("team")));
    assert!(resource_matches(
        "arn:aws:sqs:eu-west-1:123:",
        "arn:aws:sqs:eu-west-1:123:q"
    ));
}

#[test]
fn only_aws_sources_from_this_account_come_in_by_this_door() {
    let mut r = rules();
    let mut custom = s3_event();
    custom["source"] = json!("acme.billing");
    let e = parse(&custom, &r).unwrap_err().to_string();
    assert!(e.contains("acme.billing") && e.contains("aws.*"), "{e}");
    r.account = Some("123456789012".into());
    let mut ev = s3_event();
    ev["account"] = json!("123456789012");
    assert!(parse(&ev, &r).is_ok());
    ev["account"] = json!("999999999999");
    let e = parse(&ev, &r).unwrap_err().to_string();
    assert!(e.contains("999999999999"), "{e}");
}

#[test]
fn an_event_no_rule_matches_is_refused() {
    let mut ev = s3_event();
    ev["resources"] = json!(["arn:aws:s3:::initech-files"]);
    assert_eq!(
        parse(&ev, &rules()).unwrap_err(),
        ServiceEventError::NoTenant {
            event_source: "aws.s3".into(),
            resources: vec!["arn:aws:s3:::initech-files".into()]
        }
    );
    assert!(matches!(
        parse(&s3_event(), &TenantRules::default()),
        Err(ServiceEventError::NoTenant { .. })
    ));
}

#[test]
fn bad_rules_are_refused_at_start_up() {
    let bad = [
        (r#"{"source":"aws.s3","tenant":"a"}"#, "Malformed"),
        (r#"[{"source":"aws.s3","tenant":"a#b"}]"#, "Malformed"),
        (r#"[{"source":"aws.s3"}]"#, "Malformed"),
        (r#"[{"source":"aws.s3","tenant":"a","bucket":"x"}]"#, "Malformed"),
        (r#"[{"tenant":"a"}]"#, "NoCondition"),
        (r#"[{"source":"","tenant":"a"}]"#, "EmptyCondition"),
    ];
    for (json, kind) in bad {
        let err = TenantRules::parse(Some(json), None).unwrap_err();
        assert!(format!("{err:?}").starts_with(kind), "{json}: {err:?}");
    }
    assert!(matches!(
        TenantRules::parse(None, Some("not a tenant!")),
        Err(TenantRulesError::DefaultTenant(_))
    ));
}

#[test]
fn debug_leaves_the_detail_out() {
    let ev: ServiceEvent = serde_json::from_value(s3_event()).unwrap();
    let dbg = format!("{ev:?}");
    assert!(!dbg.contains("invoices"), "{dbg}");
    assert!(dbg.contains("aws.s3"), "{dbg}");
}
