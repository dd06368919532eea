//! Golden mapping tests: each provider payload (the seeds of `shared/seeds`, copied
//! into `fixtures/input`, and hand-written WA.cr payloads) deserializes and maps to
//! the canonical JSON checked into `fixtures/expected`. `UPDATE_GOLDEN=1` rewrites
//! the expected files (review the diff before committing).

use std::path::PathBuf;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use unicontacts_adapters::canonical::ContactRecord;
use unicontacts_adapters::upstream::UpstreamResponse;
use unicontacts_adapters::{gateway, periskope, wacr, AdapterError};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn input(name: &str) -> Value {
    let path = fixtures().join("input").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compares records (without `remote_data`, which is checked separately) with the expected file.
fn golden(name: &str, records: &[ContactRecord]) {
    let stripped: Vec<ContactRecord> = records
        .iter()
        .cloned()
        .map(|mut r| {
            r.remote_data = None;
            r
        })
        .collect();
    let actual = serde_json::to_value(&stripped).expect("serialize");
    let path = fixtures().join("expected").join(format!("{name}.json"));
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        let text = serde_json::to_string_pretty(&actual).expect("pretty") + "\n";
        std::fs::write(&path, text).expect("write golden");
        return;
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("expected JSON");
    assert_eq!(
        actual,
        expected,
        "{name} differs from {}:\n{}",
        path.display(),
        serde_json::to_string_pretty(&actual).unwrap_or_default()
    );
}

fn response(status: u16, body: Value) -> UpstreamResponse {
    UpstreamResponse {
        status,
        headers: HeaderMap::new(),
        body: Bytes::from(body.to_string()),
    }
}

#[test]
fn periskope_contact_by_id() {
    let raw = input("periskope-get-contact.json");
    let record = periskope::map::map_contact_value(raw.clone()).expect("maps");
    assert_eq!(
        record.remote_data.as_ref(),
        Some(&raw),
        "remote_data is the object untouched"
    );
    golden("periskope-get-contact", std::slice::from_ref(&record));
    // 21 groups and its own 1-1 chat among the chat ids.
    assert_eq!(record.memberships.len(), 21);
    assert_eq!(record.has_direct_chat, Some(true));
}

#[test]
fn periskope_contact_list() {
    let raw = input("periskope-list-contacts.json");
    let list: periskope::wire::ContactList = serde_json::from_value(raw.clone()).expect("envelope");
    assert_eq!(
        (list.count, list.from, list.to),
        (Some(10), Some(1), Some(10))
    );
    let records: Vec<ContactRecord> = list
        .contacts
        .iter()
        .map(|c| periskope::map::map_contact_value(c.clone()).expect("maps"))
        .collect();
    for (record, item) in records.iter().zip(&list.contacts) {
        assert_eq!(record.remote_data.as_ref(), Some(item));
        // List items carry no chat ids: whether a direct chat exists is unknown, not false.
        assert_eq!(record.has_direct_chat, None);
    }
    golden("periskope-list-contacts", &records);
}

#[test]
fn periskope_chat_gives_the_contact_its_groups_assignee_properties_and_chat_labels() {
    use unicontacts_adapters::canonical::{RecordField, CHAT_FIELDS};
    use unicontacts_adapters::chats::{self, ChatIndex, ChatKind, MemberRole};
    let seed = input("periskope-get-chat.json");
    let direct = periskope::map::map_chat(seed.clone())
        .expect("maps")
        .expect("a 1-1 chat");
    assert_eq!(direct.remote_id, "919537851844@c.us");
    assert_eq!(direct.name.as_deref(), Some("BK Local1"));
    assert_eq!(
        direct.kind,
        ChatKind::Direct {
            assignee: Some("bharat@hashlabs.dev".into()),
            custom_properties: [("property-tlkudzxmhjkgoktm".to_string(), json!("hello"))]
                .into_iter()
                .collect(),
            labels: vec![
                "label-xbitdvipqshahdcu".into(),
                "label-xgargwpbzidjpapt".into()
            ],
        }
    );
    // The same chat as a group (one of its `common_chats`): its members with roles.
    let mut group = seed.clone();
    group["chat_id"] = json!("120363329861739657@g.us");
    group["chat_type"] = json!("group");
    group["chat_name"] = json!("Test New 1040");
    group["members"]["919537851844@c.us"]["is_super_admin"] = json!(false);
    let group = periskope::map::map_chat(group)
        .expect("maps")
        .expect("a group");
    let ChatKind::Group { members } = &group.kind else {
        panic!("not a group: {group:?}")
    };
    let mut members = members.clone();
    members.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        members,
        vec![
            (
                "918527184400@c.us".to_string(),
                Some(MemberRole::SuperAdmin)
            ),
            ("919537851844@c.us".to_string(), Some(MemberRole::Admin)),
        ]
    );
    // A sync: the contact listed (no chat ids), completed from the chats.
    let mut listed = input("periskope-get-contact.json");
    listed.as_object_mut().expect("object").remove("chat_ids");
    let mut record = periskope::map::map_contact_value(listed).expect("maps");
    assert_eq!(
        record.unknown,
        CHAT_FIELDS.to_vec(),
        "a list item knows no chat"
    );
    let mut index = ChatIndex::default();
    index.add(direct.clone());
    index.add(group);
    index.apply(&mut record);
    assert!(record.unknown.is_empty());
    golden("periskope-get-chat", std::slice::from_ref(&record));
    // A live read: the chat ids name the groups; their names and roles are the
    // last sync's, the 1-1 chat's fields come from the chat.
    let mut read =
        periskope::map::map_contact_value(input("periskope-get-contact.json")).expect("maps");
    chats::apply_direct(&mut read, &direct);
    assert_eq!(read.unknown, vec![RecordField::MembershipDetails]);
    assert_eq!(read.assignee, record.assignee);
    assert_eq!(read.custom_properties, record.custom_properties);
    assert_eq!(read.chat_labels, record.chat_labels);
    assert_eq!(read.memberships.len(), 21);
    read.keep_unknown_from(&record);
    let named: Vec<_> = read
        .memberships
        .iter()
        .filter(|m| m.name.is_some())
        .collect();
    assert_eq!(named.len(), 1, "the group the sync named");
    assert_eq!(named[0].role.as_deref(), Some("admin"));
}

#[test]
fn periskope_null_name_falls_back_to_whatsapp_names_and_never_to_the_jid() {
    let base = json!({"contact_id": "447403688342@c.us", "contact_name": null});
    let r = periskope::map::map_contact_value(base.clone()).expect("maps");
    assert_eq!(r.display_name, None, "not the string \"null\", not the JID");
    let mut with_push = base.clone();
    with_push["pushname"] = json!("Tom");
    with_push["verified_name"] = json!("Tom's Shop");
    assert_eq!(
        periskope::map::map_contact_value(with_push)
            .expect("maps")
            .display_name
            .as_deref(),
        Some("Tom")
    );
    let mut verified = base;
    verified["verified_name"] = json!("Tom's Shop");
    verified["contact_name"] = json!("null");
    assert_eq!(
        periskope::map::map_contact_value(verified)
            .expect("maps")
            .display_name
            .as_deref(),
        Some("Tom's Shop")
    );
}

#[test]
fn periskope_lid_contacts_are_never_parsed_as_phones() {
    let r = periskope::map::map_contact_value(json!({"contact_id": "205227043110953@lid"}))
        .expect("maps");
    assert!(r.phones.is_empty());
    assert_eq!(r.wa_lid.as_deref(), Some("205227043110953@lid"));
    let r = periskope::map::map_contact_value(json!({
        "contact_id": "919537851844@c.us", "contact_lid": "205227043110953:4@lid"
    }))
    .expect("maps");
    assert_eq!(r.wa_lid.as_deref(), Some("205227043110953@lid"));
    assert_eq!(r.phones[0].e164.as_deref(), Some("+919537851844"));
}

#[test]
fn periskope_errors_map_to_adapter_errors() {
    let validation = json!({
        "code": "VALIDATION_ERROR", "message": "Invalid query", "name": "Validation Error", "status": 422,
        "fields": {"limit": {"message": "Limit should be less than 2000", "value": "10000"}}
    });
    match periskope::client::classify(&response(422, validation)) {
        AdapterError::Rejected {
            status: 422,
            fields,
            ..
        } => {
            assert_eq!(fields["limit"]["message"], "Limit should be less than 2000")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        periskope::client::classify(&response(404, json!({}))),
        AdapterError::NotFound
    );
    assert_eq!(
        periskope::client::classify(&response(401, json!({"message": "Unauthorized"}))),
        AdapterError::Unauthorized { status: 401 }
    );
}

#[test]
fn gateway_contact_detail() {
    let raw = input("gateway-get-contact.json");
    let record = gateway::map::map_detail("205227043110953@lid", raw.clone()).expect("maps");
    assert_eq!(record.remote_data.as_ref(), Some(&raw));
    golden("gateway-get-contact", std::slice::from_ref(&record));
}

#[test]
fn gateway_error_body() {
    // The seed's 404 says the session is unknown: the connection's fault.
    match gateway::client::classify(&response(404, input("gateway-error.json"))) {
        AdapterError::SessionMissing { message } => assert_eq!(message, "session not found"),
        other => panic!("{other:?}"),
    }
    let v = json!({"error": {"code": "not_found", "message": "contact not found"}});
    match gateway::client::classify(&response(404, v)) {
        AdapterError::NotFound => {}
        other => panic!("{other:?}"),
    }
    let v = json!({"error": {"code": "validation_error", "message": "bad cursor", "details": {"errors": ["cursor is malformed"]}}});
    match gateway::client::classify(&response(400, v)) {
        AdapterError::Rejected {
            status: 400,
            message,
            fields,
        } => {
            assert_eq!(message, "bad cursor");
            assert_eq!(fields["errors"][0], "cursor is malformed");
        }
        other => panic!("{other:?}"),
    }
    let v = json!({"error": {"code": "gateway_unavailable", "message": "draining"}});
    match gateway::client::classify(&response(503, v)) {
        AdapterError::Upstream {
            status: 503, code, ..
        } => assert_eq!(code.as_deref(), Some("gateway_unavailable")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wacr_contact_in_a_data_envelope_with_every_field() {
    let body = input("wacr-contact-wrapped.json");
    let resource = wacr::wire::unwrap_resource(body.clone()).expect("envelope");
    assert_eq!(resource, body["data"]);
    let wire: wacr::wire::Contact = serde_json::from_value(resource.clone()).expect("wire");
    assert_eq!(
        wire.extra.get("loyalty_points"),
        Some(&json!(1250)),
        "unknown fields are kept"
    );
    let record = wacr::map::map_contact_value(resource.clone(), None).expect("maps");
    assert_eq!(record.remote_data.as_ref(), Some(&resource));
    golden("wacr-contact-wrapped", std::slice::from_ref(&record));
}

#[test]
fn wacr_bare_contact_with_nulls() {
    let body = input("wacr-contact-bare-nulls.json");
    let resource = wacr::wire::unwrap_resource(body.clone()).expect("bare object");
    assert_eq!(resource, body);
    let record = wacr::map::map_contact_value(resource, Some("IN")).expect("maps");
    golden("wacr-contact-bare-nulls", std::slice::from_ref(&record));
}

#[test]
fn wacr_list_page_with_meta_and_links() {
    let page = wacr::wire::unwrap_list(input("wacr-contacts-page.json")).expect("envelope");
    assert_eq!(page.meta.as_ref().and_then(|m| m.last_page), Some(3));
    assert_eq!(page.next_link, Some(Some("/contacts?page=2".to_string())));
    let records: Vec<ContactRecord> = page
        .items
        .into_iter()
        .map(|raw| wacr::map::map_contact_value(raw, Some("GB")).expect("maps"))
        .collect();
    golden("wacr-contacts-page", &records);
    // A bare array is a list too.
    let bare = wacr::wire::unwrap_list(json!([{"id": 1}])).expect("bare list");
    assert_eq!(bare.items.len(), 1);
    assert!(bare.meta.is_none() && bare.next_link.is_none());
}

#[test]
fn wacr_errors_in_each_shape() {
    let shapes = [
        json!({"error": {"code": "NOT_FOUND", "message": "Contact not found"}}),
        json!({"message": "The given data was invalid.", "errors": {"phone": ["This phone number already exists"]}}),
        json!({"code": "VALIDATION_ERROR", "message": "Type must be either lead, customer, or guest"}),
    ];
    assert_eq!(
        wacr::client::classify(&response(404, shapes[0].clone())),
        AdapterError::NotFound
    );
    match wacr::client::classify(&response(422, shapes[1].clone())) {
        AdapterError::Rejected {
            fields, message, ..
        } => {
            assert_eq!(message, "The given data was invalid.");
            assert_eq!(fields["phone"][0], "This phone number already exists");
        }
        other => panic!("{other:?}"),
    }
    match wacr::client::classify(&response(422, shapes[2].clone())) {
        AdapterError::Rejected { message, .. } => assert!(message.starts_with("Type must be")),
        other => panic!("{other:?}"),
    }
    let quota = json!({"error": {"code": "FEATURE_LIMIT_EXCEEDED", "message": "Contact limit reached", "details": {"feature": "contacts", "current": 500, "maximum": 500}}});
    match wacr::client::classify(&response(403, quota)) {
        AdapterError::Rejected {
            status: 403,
            fields,
            ..
        } => assert_eq!(fields["maximum"], 500),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        wacr::client::classify(&response(
            403,
            json!({"message": "Missing scope contacts:read"})
        )),
        AdapterError::Unauthorized { status: 403 }
    );
}

#[test]
fn malformed_payloads_are_decode_errors_naming_the_path() {
    match wacr::map::map_contact_value(json!({"id": "forty-two"}), None) {
        Err(AdapterError::Decode { detail }) => assert!(detail.contains("id"), "{detail}"),
        other => panic!("{other:?}"),
    }
    match periskope::map::map_contact_value(json!({"contact_id": "1@c.us", "labels": "a,b"})) {
        Err(AdapterError::Decode { detail }) => assert!(detail.contains("labels"), "{detail}"),
        other => panic!("{other:?}"),
    }
    match wacr::wire::unwrap_list(json!({"data": {"id": 1}})) {
        Err(AdapterError::Decode { detail }) => assert!(detail.contains("data"), "{detail}"),
        other => panic!("{other:?}"),
    }
    match gateway::map::map_detail("1@lid", json!({"identity": {"id": 1}})) {
        Err(AdapterError::Decode { detail }) => assert!(detail.contains("identity"), "{detail}"),
        other => panic!("{other:?}"),
    }
}
