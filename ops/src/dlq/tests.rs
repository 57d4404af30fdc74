use super::*;

fn message(body: &str, attributes: &[(&str, &str)]) -> DlqMessage {
    DlqMessage {
        message_id: "m-1".into(),
        receipt: "r-1".into(),
        body: body.into(),
        attributes: attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        raw_attributes: HashMap::new(),
        receive_count: 3,
        sent_at: None,
    }
}

#[test]
fn native_redrive_request_names_the_dlq_and_the_rate() {
    let request = native_move_request(
        "arn:aws:sqs:us-east-1:111122223333:uc-worker-dlq",
        None,
        Some(25.4),
    );
    assert_eq!(
        request.source_arn(),
        Some("arn:aws:sqs:us-east-1:111122223333:uc-worker-dlq")
    );
    assert_eq!(
        request.destination_arn(),
        None,
        "without a destination SQS returns messages to their source queue"
    );
    assert_eq!(request.max_number_of_messages_per_second(), Some(25));
    let request = native_move_request("arn:dlq", Some("arn:queue"), Some(100_000.0));
    assert_eq!(request.destination_arn(), Some("arn:queue"));
    assert_eq!(
        request.max_number_of_messages_per_second(),
        Some(500),
        "SQS's maximum"
    );
    assert_eq!(
        native_move_request("arn:dlq", None, None).max_number_of_messages_per_second(),
        None
    );
}

#[test]
fn filters_parse_or_explain() {
    assert_eq!("sub=ABC".parse::<Filter>(), Ok(Filter::Sub("abc".into())));
    assert_eq!(
        "reason=Unauthorized".parse::<Filter>(),
        Ok(Filter::Reason("Unauthorized".into()))
    );
    assert!("abc".parse::<Filter>().unwrap_err().contains("sub=<sub>"));
    assert!("sub=".parse::<Filter>().is_err());
    assert!("reasn=x".parse::<Filter>().is_err());
}

#[test]
fn reasons_match_as_stats_prints_them_in_any_case() {
    let moved = message("{}", &[]);
    assert_eq!(moved.reason(), "MaxReceiveCountExceeded");
    for spelling in [
        "MaxReceiveCountExceeded",
        "maxreceivecountexceeded",
        "MAXRECEIVECOUNTEXCEEDED",
    ] {
        assert!(
            moved.matches(&Filter::Reason(spelling.into())),
            "{spelling}"
        );
    }
    assert!(!moved.matches(&Filter::Reason("MaxReceiveCount".into())));
    let poison = message("x", &[(attr::REASON, "NotJson")]);
    assert!(poison.matches(&Filter::Reason("notjson".into())));
    assert!(!poison.matches(&Filter::Reason("MaxReceiveCountExceeded".into())));
}

#[test]
fn the_sub_comes_from_the_event_or_leniently_from_any_json() {
    let pool = "us-east-1_Pool";
    let sub = uc_schemas::sub_from_label("peek");
    let event = uc_schemas::UserConfirmed::builder(pool, &sub)
        .username("jane@example.com")
        .build();
    let genuine = uc_schemas::to_envelope(uc_schemas::DEFAULT_SOURCE, &event).to_string();
    let identity = message(&genuine, &[]).identity();
    assert!(identity.parsed);
    assert_eq!(identity.sub.as_deref(), Some(sub.as_str()));

    // Not a valid UserConfirmed (no schemaVersion), but the sub is there to read.
    let loose =
        r#"{"detail-type":"UserConfirmed","detail":{"sub":"Loose-Sub","username":"x@y.z"}}"#;
    let identity = message(loose, &[]).identity();
    assert!(!identity.parsed);
    assert_eq!(identity.sub.as_deref(), Some("Loose-Sub"));
    assert_eq!(identity.username.as_deref(), Some("x@y.z"));
    assert_eq!(
        message(r#"{"sub":"top"}"#, &[]).identity().sub.as_deref(),
        Some("top")
    );
    // No JSON at all: the worker's record still names the sub.
    assert_eq!(
        message("<empty>", &[(attr::SUB, "from-record")]).sub(),
        Some("from-record".into())
    );
    assert!(message("{\"detail\": 5}", &[]).sub().is_none());
    assert!(message("{", &[]).sub().is_none());
    assert!(
        message(loose, &[]).matches(&Filter::Sub("loose-sub".into())),
        "subs match in any case"
    );
}

#[test]
fn peek_rows_hold_no_address_unless_asked() {
    let body = r#"{"detail-type":"UserConfirmed","detail":{"sub":"s-1","username":"jane@example.com","email":"jane@example.com"}}"#;
    let m = message(
        body,
        &[
            (attr::REASON, "NotJson"),
            (attr::DETAIL, "forged: bob@example.com"),
            (attr::RECEIVE_COUNT, "5"),
        ],
    );
    let row = peek_row(&m, false, Utc::now());
    let json = serde_json::to_string(&row).unwrap();
    assert!(!json.contains('@'), "{json}");
    assert_eq!(row.sub.as_deref(), Some("s-1"));
    assert_eq!(row.worker_receive_count, Some(5));
    assert_eq!(
        row.dlq_receives_before_peek, 2,
        "the count before this peek's receive"
    );
    let shown = peek_row(&m, true, Utc::now());
    assert_eq!(shown.email.as_deref(), Some("jane@example.com"));
    assert_eq!(shown.username.as_deref(), Some("jane@example.com"));
}

#[test]
fn a_filter_that_matched_nothing_names_what_is_there() {
    let present: BTreeMap<String, usize> = [("NotJson".to_owned(), 2), ("X".to_owned(), 1)]
        .into_iter()
        .collect();
    assert_eq!(
        no_match(&Filter::Reason("Unauthorised".into()), &present).unwrap(),
        "no message has reason Unauthorised; reasons present: NotJson (2), X (1)"
    );
    assert_eq!(no_match(&Filter::All, &present), None);
}

#[test]
fn a_replay_succeeds_only_when_nothing_matching_is_left() {
    let done = ReplaySummary {
        complete: true,
        ..Default::default()
    };
    assert!(done.succeeded());
    for unfinished in [
        ReplaySummary {
            left: 1,
            ..done.clone()
        },
        ReplaySummary {
            still_failing: 1,
            ..done.clone()
        },
        ReplaySummary {
            more_beyond_limit: true,
            ..done.clone()
        },
        ReplaySummary {
            complete: false,
            ..done.clone()
        },
        ReplaySummary {
            no_match: Some("no message has reason X".into()),
            ..done.clone()
        },
    ] {
        assert!(!unfinished.succeeded(), "{unfinished:?}");
    }
}
