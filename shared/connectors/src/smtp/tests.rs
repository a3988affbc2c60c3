//! Building MIME messages (delivery is tested against a real server in `cards/email/tests.rs`).

use domain::email::mime_message as build_message;
use domain::email::{Attachment, Email, EmailError};

fn email() -> Email {
    Email {
        from: "idflow <idflow@example.com>".into(),
        reply_to: None,
        to: vec!["ada@example.com".into()],
        cc: Vec::new(),
        bcc: Vec::new(),
        subject: "Report".into(),
        text: Some("see attached".into()),
        html: None,
        attachments: Vec::new(),
    }
}

#[test]
fn messages_carry_bodies_and_attachments_as_mime_parts() {
    let check = |email: Email, expected: &[&str]| {
        let message = build_message(&email).expect("builds");
        let text = String::from_utf8(message.formatted()).expect("utf-8");
        for part in expected {
            assert!(text.contains(part), "{part:?} missing in:\n{text}");
        }
    };
    check(
        email(),
        &[
            "From: idflow <idflow@example.com>",
            "To: ada@example.com",
            "Subject: Report",
            "Message-ID: <",
            "Content-Type: text/plain; charset=utf-8",
            "see attached",
        ],
    );
    let mut both = email();
    both.html = Some("<p>see attached</p>".into());
    check(
        both,
        &[
            "multipart/alternative",
            "Content-Type: text/html; charset=utf-8",
            "<p>see attached</p>",
        ],
    );
    let mut attached = email();
    attached.attachments.push(Attachment {
        filename: "report.csv".into(),
        content_type: "text/csv; charset=utf-8".into(),
        content: b"a,b\r\n1,2\r\n".to_vec(),
    });
    check(
        attached,
        &[
            "multipart/mixed",
            "Content-Disposition: attachment; filename=\"report.csv\"",
            "Content-Type: text/csv; charset=utf-8",
        ],
    );
}

#[test]
fn bad_addresses_and_types_name_the_field() {
    let check = |email: Email, field: &str| match build_message(&email) {
        Err(EmailError::Invalid { field: named, .. }) => assert_eq!(named, field),
        other => panic!("expected an invalid {field}, got {other:?}"),
    };
    let mut bad_to = email();
    bad_to.to = vec!["ada at example".into()];
    check(bad_to, "to");
    let mut bad_from = email();
    bad_from.from = "".into();
    check(bad_from, "from");
    let mut bad_type = email();
    bad_type.attachments.push(Attachment {
        filename: "x".into(),
        content_type: "not a type".into(),
        content: Vec::new(),
    });
    check(bad_type, "attachments[0].content_type");
}
