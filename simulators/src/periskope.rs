//! A Periskope simulator: `/v1/contacts` (offset/limit ≤ 2000, `{contacts, count,
//! from, to}`), `/v1/contacts/{digits}` (with `chat_ids`), `POST /v1/contacts/create`,
//! `PATCH /v1/contacts/{digits}`, `PATCH /v1/contacts/labels`, `GET /v1/chats`
//! (offset/limit ≤ 2000, `chat_type`; `{chats, count, from, to}`) and
//! `GET /v1/chats/{chat_id}`. Bearer key and `x-phone` are required; errors are
//! `{code, message, name, status, fields}`; `X-RateLimit-*` on every reply.
//!
//! Chats follow the seed (`periskope-get-chat.txt`): one group chat per world
//! group with the Periskope people in it as `members` (roles as the Gateway gives
//! them) and the connected phone as super admin; a 1-1 chat per person with a
//! direct chat, with `assigned_to`, `custom_properties` (keyed by property id) and
//! `label_ids`. The list carries `members`, as the SDK's `ListChatsType`
//! (`ChatType[]`, `members` nullable) types it; docs/providers.md (§1.4) marks this
//! UNVERIFIED, and [`PeriskopeStore::list_without_members`] serves lists without
//! them (with `updated_at`, which moves when a test changes a chat through
//! [`PeriskopeStore::chat_mut`], and `member_count`). List order is by creation, stable while a sync pages through.
//! A contact's `chat_ids` are the chats whose members include it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Map, Value};

use crate::harness::{Listing, RateHeaders, RateLimit, SimApi, SimRequest, SimResponse, SimServer};
use crate::world::World;

pub const ORG_ID: &str = "2997dd64-89bf-48d3-9a22-b314fca017e5";
const COLORS: [&str; 6] = [
    "#7D9EF1", "#DC2626", "#007BFC", "#C4532D", "#B4876E", "#FA6533",
];
const LABELS: [(&str, &str); 5] = [
    ("label-ukjqhqngnakncalm", "vip"),
    ("label-wwfrdqogccexahnv", "lead"),
    ("label-xbitdvipqshahdcu", "support"),
    ("label-xgargwpbzidjpapt", "billing"),
    ("label-qmrtzkexwplvnahd", "follow-up"),
];

/// The contacts, in list order.
#[derive(Debug, Default)]
pub struct PeriskopeStore {
    contacts: Vec<Value>,
    /// digits → position
    index: HashMap<String, usize>,
    /// The chats, in list order (shared, so a page is taken out of the lock
    /// without copying and written out after it).
    chats: Vec<Arc<Value>>,
    /// chat id → position
    chat_index: HashMap<String, usize>,
    /// Lists chats with `members: null` (detail answers keep them).
    pub list_without_members: bool,
    /// What `GET /contacts` serves.
    pub listing: Listing,
}

/// The connected phone (`x-phone` of the tests), a member of every chat.
pub const ORG_PHONE: &str = "918527184400@c.us";
/// The org's agents, whom 1-1 chats are assigned to.
const AGENTS: [&str; 3] = [
    "bharat@hashlabs.dev",
    "support@hashlabs.dev",
    "sales@hashlabs.dev",
];
/// A custom property of the org, as chats key it (by id).
pub const CITY_PROPERTY: &str = "property-tlkudzxmhjkgoktm";
const CITIES: [&str; 4] = ["Mumbai", "São Paulo", "Jakarta", "London"];

fn timestamp(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

fn member(chat_id: &str, contact_id: &str, name: Value, role: &str) -> Value {
    json!({
        "chat_id": chat_id,
        "contact_color": "#B4876E",
        "contact_id": contact_id,
        "contact_image": null,
        "contact_name": name,
        "is_admin": role != "member",
        "is_internal": contact_id == ORG_PHONE,
        "is_super_admin": role == "superadmin",
        "org_id": ORG_ID,
        "org_phone": ORG_PHONE,
    })
}

/// A chat as the seed shows one (less `latest_message`).
fn chat_value(
    chat_id: &str,
    name: Value,
    chat_type: &str,
    created_at: &str,
    members: Map<String, Value>,
) -> Value {
    json!({
        "add_members_admins_only": null,
        "assigned_to": null,
        "chat_access": {},
        "chat_id": chat_id,
        "chat_image": null,
        "chat_name": name,
        "chat_org_phones": [ORG_PHONE],
        "chat_type": chat_type,
        "closed_at": null,
        "created_at": created_at,
        "custom_properties": {},
        "flag_count_map": null,
        "group_description": null,
        "hubspot_metadata": {},
        "info_admins_only": null,
        "invite_link": null,
        "is_exited": false,
        "is_muted": false,
        "label_ids": {},
        "member_count": members.len(),
        "members": members,
        "message_unread_count": null,
        "messages_admins_only": null,
        "org_id": ORG_ID,
        "org_phone": ORG_PHONE,
        "updated_at": created_at,
    })
}

fn digits_of(contact: &Value) -> String {
    contact["contact_id"]
        .as_str()
        .unwrap_or("")
        .split('@')
        .next()
        .unwrap_or("")
        .to_string()
}

impl PeriskopeStore {
    pub fn from_world(world: &World) -> Self {
        let base = Utc
            .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let mut store = PeriskopeStore::default();
        for p in world.periskope_people() {
            let Some(phone) = &p.phone else { continue };
            let label_picks: Vec<&(&str, &str)> = LABELS
                .iter()
                .enumerate()
                .filter(|(i, _)| (p.index + i * 7) % 5 == 0)
                .map(|(_, l)| l)
                .take(2)
                .collect();
            // One in ten has no name set in Periskope; WhatsApp's push name may still come.
            let unnamed = p.index % 10 == 3;
            let mut c = json!({
                "contact_id": format!("{phone}@c.us"),
                "org_id": ORG_ID,
                "contact_name": if unnamed { Value::Null } else { Value::String(p.display_name()) },
                "contact_type": if p.business_name.is_some() { "business" } else { "user" },
                "contact_color": COLORS[p.index % COLORS.len()],
                "contact_image": if p.index % 4 == 0 { Value::Null } else {
                    Value::String(format!("https://storage.googleapis.com/periskope-images/{ORG_ID}%2F{phone}%40c.us.jpg?timestamp=1737373011790"))
                },
                "is_imported": null,
                "is_internal": if p.index % 25 == 0 { json!(true) } else { Value::Null },
                "is_my_contact": null,
                "is_wa_contact": true,
                "label_ids": label_picks.iter().map(|(id, _)| ((*id).to_string(), json!(true))).collect::<Map<_, _>>(),
                "labels": label_picks.iter().map(|(_, name)| *name).collect::<Vec<_>>(),
                "updated_at": (base + Duration::minutes(p.updated_minute)).to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
            });
            if unnamed && p.index % 20 == 3 {
                c["pushname"] = json!(p.first_name);
            }
            if p.periskope_knows_lid {
                c["contact_lid"] = json!(p.lid);
            }
            if p.has_dm {
                store.chats.push(Arc::new(direct_chat(p, &c, base)));
            }
            store.insert(c);
        }
        // Each group with the Periskope people in it, and the connected phone.
        let mut members: Vec<Map<String, Value>> = vec![Map::new(); world.groups.len()];
        for (g, group) in world.groups.iter().enumerate() {
            members[g].insert(
                ORG_PHONE.into(),
                member(&group.jid, ORG_PHONE, json!("Support"), "superadmin"),
            );
        }
        for p in world.periskope_people() {
            let Some(phone) = &p.phone else { continue };
            let contact_id = format!("{phone}@c.us");
            for g in &p.groups {
                let name = json!(p.display_name());
                members[*g].insert(
                    contact_id.clone(),
                    member(&world.groups[*g].jid, &contact_id, name, p.group_role()),
                );
            }
        }
        for ((g, group), members) in world.groups.iter().enumerate().zip(members) {
            let created = timestamp(base + Duration::minutes((g as i64 * 997) % 600_000));
            store.chats.push(Arc::new(chat_value(
                &group.jid,
                json!(group.name),
                "group",
                &created,
                members,
            )));
        }
        store.chats.sort_by(|a, b| {
            (a["created_at"].as_str(), a["chat_id"].as_str())
                .cmp(&(b["created_at"].as_str(), b["chat_id"].as_str()))
        });
        store.index_chats();
        store
    }

    fn index_chats(&mut self) {
        self.chat_index = self
            .chats
            .iter()
            .enumerate()
            .map(|(i, c)| (c["chat_id"].as_str().unwrap_or("").to_string(), i))
            .collect();
    }

    /// The chats, in list order (a copy).
    pub fn chats(&self) -> Vec<Value> {
        self.chats.iter().map(|c| Value::clone(c)).collect()
    }

    /// How many chats there are.
    pub fn chat_count(&self) -> usize {
        self.chats.len()
    }

    /// A chat by id (`…@g.us`, `…@c.us`), to read or change as a Periskope user
    /// would; changing it moves its `updated_at`.
    pub fn chat_mut(&mut self, chat_id: &str) -> Option<&mut Value> {
        let i = *self.chat_index.get(chat_id)?;
        let chat = Arc::make_mut(&mut self.chats[i]);
        chat["updated_at"] = json!(timestamp(Utc::now()));
        Some(chat)
    }

    /// Takes a chat out (a group deleted, a chat cleared), to put back with
    /// [`Self::put_chat`] as it was.
    pub fn remove_chat(&mut self, chat_id: &str) -> Option<Value> {
        let i = *self.chat_index.get(chat_id)?;
        let chat = self.chats.remove(i);
        self.index_chats();
        Some(Arc::unwrap_or_clone(chat))
    }

    /// Adds a chat at the end of the list (or replaces the one with its id).
    pub fn put_chat(&mut self, chat: Value) {
        let id = chat["chat_id"].as_str().unwrap_or("").to_string();
        match self.chat_index.get(&id) {
            Some(&i) => self.chats[i] = Arc::new(chat),
            None => {
                self.chats.push(Arc::new(chat));
                self.index_chats();
            }
        }
    }

    /// The ids of the chats whose members include the contact (its `chat_ids`).
    fn chat_ids(&self, digits: &str) -> Vec<String> {
        let contact_id = format!("{digits}@c.us");
        let mut groups = Vec::new();
        let mut own = None;
        for c in &self.chats {
            if c["members"].get(&contact_id).is_some() {
                let id = c["chat_id"].as_str().unwrap_or("").to_string();
                if id == contact_id {
                    own = Some(id);
                } else {
                    groups.push(id);
                }
            }
        }
        groups.extend(own);
        groups
    }

    fn chat(&self, raw_id: &str) -> Option<&Value> {
        // The docs' example path is the digits alone; the id says `@c.us`.
        let id = if raw_id.contains('@') {
            raw_id.to_string()
        } else {
            format!("{raw_id}@c.us")
        };
        self.chat_index.get(&id).map(|&i| &*self.chats[i])
    }

    fn insert(&mut self, contact: Value) {
        let digits = digits_of(&contact);
        match self.index.get(&digits) {
            Some(&i) => self.contacts[i] = contact,
            None => {
                self.index.insert(digits, self.contacts.len());
                self.contacts.push(contact);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.contacts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty()
    }

    pub fn get(&self, digits: &str) -> Option<&Value> {
        self.index.get(digits).map(|&i| &self.contacts[i])
    }

    /// Adds or replaces a contact (keyed by the digits of its `contact_id`).
    pub fn upsert(&mut self, contact: Value) {
        self.insert(contact);
    }

    /// Removes a contact as if deleted in the Periskope app.
    pub fn remove(&mut self, digits: &str) -> Option<Value> {
        let i = self.index.remove(digits)?;
        let removed = self.contacts.remove(i);
        for (d, pos) in self.index.iter_mut() {
            if *pos > i {
                *pos -= 1;
            }
            let _ = d;
        }
        Some(removed)
    }

    pub fn all(&self) -> &[Value] {
        &self.contacts
    }

    fn detail(&self, digits: &str) -> Option<Value> {
        let mut c = self.get(digits)?.clone();
        c["chat_ids"] = json!(self.chat_ids(digits));
        Some(c)
    }
}

/// A person's 1-1 chat: assigned to one of the agents for two in three people,
/// the city property for one in three, a chat label for one in four.
fn direct_chat(p: &crate::world::Person, contact: &Value, base: chrono::DateTime<Utc>) -> Value {
    let contact_id = contact["contact_id"].as_str().unwrap_or("");
    let mut members = Map::new();
    members.insert(
        ORG_PHONE.into(),
        member(contact_id, ORG_PHONE, json!("Support"), "superadmin"),
    );
    members.insert(
        contact_id.into(),
        member(
            contact_id,
            contact_id,
            contact["contact_name"].clone(),
            "superadmin",
        ),
    );
    let chat_type = contact["contact_type"].as_str().unwrap_or("user");
    let created = timestamp(base + Duration::minutes(p.updated_minute / 2));
    let mut chat = chat_value(
        contact_id,
        contact["contact_name"].clone(),
        chat_type,
        &created,
        members,
    );
    chat["updated_at"] = json!(timestamp(base + Duration::minutes(p.updated_minute)));
    if !p.index.is_multiple_of(3) {
        chat["assigned_to"] = json!(AGENTS[p.index % AGENTS.len()]);
        chat["chat_access"] = json!({AGENTS[p.index % AGENTS.len()]: true});
    }
    if p.index % 3 == 1 {
        chat["custom_properties"] = json!({CITY_PROPERTY: CITIES[p.index % CITIES.len()]});
    }
    if p.index % 4 == 1 {
        let (id, _) = LABELS[(p.index / 4) % LABELS.len()];
        chat["label_ids"] = json!({id: true});
    }
    chat
}

pub struct PeriskopeApi {
    pub api_key: String,
    store: Mutex<PeriskopeStore>,
}

impl PeriskopeApi {
    pub fn new(api_key: &str, store: PeriskopeStore) -> Self {
        Self {
            api_key: api_key.to_string(),
            store: Mutex::new(store),
        }
    }

    /// Reads or changes the data, as a user of the Periskope app would.
    pub fn with_store<T>(&self, f: impl FnOnce(&mut PeriskopeStore) -> T) -> T {
        f(&mut self.store.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn error(status: u16, code: &str, name: &str, message: &str, fields: Value) -> SimResponse {
    SimResponse::json(
        status,
        json!({"code": code, "message": message, "name": name, "status": status, "fields": fields}),
    )
}

fn validation(message: &str, fields: Value) -> SimResponse {
    error(422, "VALIDATION_ERROR", "Validation Error", message, fields)
}

fn labels_of(csv: &str) -> (Map<String, Value>, Vec<String>) {
    let mut ids = Map::new();
    let mut names = Vec::new();
    for name in csv
        .split(',')
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
    {
        let id = LABELS
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(id, _)| id.to_string())
            .unwrap_or_else(|| {
                format!(
                    "label-{}",
                    name.replace(|c: char| !c.is_ascii_alphanumeric(), "")
                )
            });
        ids.insert(id, json!(true));
        if !names.contains(&name) {
            names.push(name);
        }
    }
    (ids, names)
}

impl SimApi for PeriskopeApi {
    fn prefix(&self) -> &'static str {
        "/v1"
    }

    fn rate_headers(&self) -> RateHeaders {
        RateHeaders::Full
    }

    fn trace_header(&self) -> Option<&'static str> {
        Some("x-periskope-trace-id")
    }

    fn authorize(&self, req: &SimRequest) -> Result<(), SimResponse> {
        if req.bearer() != Some(self.api_key.as_str()) {
            return Err(error(
                401,
                "UNAUTHORIZED",
                "Unauthorized",
                "Invalid or missing API key",
                Value::Null,
            ));
        }
        if req.header("x-phone").is_none_or(|p| p.trim().is_empty()) {
            return Err(validation(
                "x-phone header is required",
                json!({"x-phone": {"message": "x-phone header is required"}}),
            ));
        }
        Ok(())
    }

    fn error(&self, status: u16, code: &str, message: &str) -> SimResponse {
        match status {
            429 => error(
                429,
                "RATE_LIMITED",
                "Too Many Requests",
                message,
                Value::Null,
            ),
            _ => error(status, &code.to_uppercase(), "Error", message, Value::Null),
        }
    }

    fn handle(&self, req: &SimRequest) -> SimResponse {
        let path = req.path.strip_prefix("/v1").unwrap_or("");
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (req.method.as_str(), segments.as_slice()) {
            ("GET", ["contacts"]) => self.list(req),
            ("GET", ["contacts", id]) => self.with_store(|s| {
                s.detail(id)
                    .map(|c| SimResponse::json(200, c))
                    .unwrap_or_else(|| {
                        error(
                            404,
                            "NOT_FOUND",
                            "Not Found",
                            "Contact not found",
                            Value::Null,
                        )
                    })
            }),
            ("POST", ["contacts", "create"]) => self.create(req),
            ("GET", ["chats"]) => self.list_chats(req),
            ("GET", ["chats", id]) => self.with_store(|s| {
                s.chat(id)
                    .map(|c| SimResponse::json(200, c.clone()))
                    .unwrap_or_else(|| {
                        error(404, "NOT_FOUND", "Not Found", "Chat not found", Value::Null)
                    })
            }),
            ("PATCH", ["contacts", "labels"]) => self.replace_labels(req),
            ("PATCH", ["contacts", id]) => self.update(id, req),
            _ => error(
                404,
                "NOT_FOUND",
                "Not Found",
                "Route not found",
                Value::Null,
            ),
        }
    }
}

impl PeriskopeApi {
    fn list(&self, req: &SimRequest) -> SimResponse {
        let (offset, limit) = match paging(req) {
            Ok(v) => v,
            Err(e) => return e,
        };
        self.with_store(|s| {
            let shown = s.listing.shown(s.contacts.len());
            let page: Vec<Value> = s.contacts[..shown]
                .iter()
                .skip(offset)
                .take(limit)
                .cloned()
                .collect();
            let n = page.len();
            let count = match s.listing {
                Listing::CountIsPage => n,
                _ => shown,
            };
            SimResponse::json(
                200,
                json!({"contacts": page, "count": count, "from": offset + 1, "to": offset + n}),
            )
        })
    }

    fn list_chats(&self, req: &SimRequest) -> SimResponse {
        let (offset, limit) = match paging(req) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let chat_type = req.query.get("chat_type").map(String::as_str);
        // Only the page's chats are taken under the lock (shared, not copied);
        // the body is written after it, so concurrent calls are served side by
        // side as the provider's servers would.
        let (page, count, without_members) = self.with_store(|s| {
            let mut page = Vec::new();
            let mut count = 0;
            for c in s
                .chats
                .iter()
                .filter(|c| chat_type.is_none_or(|t| c["chat_type"].as_str() == Some(t)))
            {
                if count >= offset && page.len() < limit {
                    page.push(Arc::clone(c));
                }
                count += 1;
            }
            (page, count, s.list_without_members)
        });
        let mut body = Vec::with_capacity(page.len() * 512);
        body.extend_from_slice(b"{\"chats\":[");
        for (i, chat) in page.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            let written = if without_members {
                let mut c = Value::clone(chat);
                c["members"] = Value::Null;
                serde_json::to_writer(&mut body, &c)
            } else {
                serde_json::to_writer(&mut body, &**chat)
            };
            if let Err(e) = written {
                return error(
                    500,
                    "INTERNAL",
                    "Internal Error",
                    &e.to_string(),
                    Value::Null,
                );
            }
        }
        let n = page.len();
        body.extend_from_slice(
            format!(
                "],\"count\":{count},\"from\":{},\"to\":{}}}",
                offset + 1,
                offset + n
            )
            .as_bytes(),
        );
        SimResponse::raw_json(200, body.into())
    }

    fn create(&self, req: &SimRequest) -> SimResponse {
        let body = req.json().unwrap_or(Value::Null);
        let id = body["contact_id"].as_str().unwrap_or("");
        let name = body["contact_name"].as_str().unwrap_or("");
        let mut fields = Map::new();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            fields.insert(
                "contact_id".into(),
                json!({"message": "contact_id is required (country code + number)"}),
            );
        }
        if name.trim().is_empty() {
            fields.insert(
                "contact_name".into(),
                json!({"message": "contact_name is required"}),
            );
        }
        if !fields.is_empty() {
            return validation("Invalid body", Value::Object(fields));
        }
        if self.with_store(|s| s.index.contains_key(id)) {
            // Undocumented: a contact's id is its phone, so a second create of
            // one phone is refused (docs/providers.md §7 lists duplicates as unverified).
            return error(
                409,
                "CONFLICT",
                "Conflict",
                "Contact already exists",
                Value::Null,
            );
        }
        let (label_ids, labels) = labels_of(body["labels"].as_str().unwrap_or(""));
        let contact = json!({
            "contact_id": format!("{id}@c.us"), "org_id": ORG_ID, "contact_name": name,
            "contact_type": "user", "contact_color": COLORS[id.len() % COLORS.len()], "contact_image": null,
            "is_imported": true, "is_internal": body["is_internal"].as_bool(), "is_my_contact": null,
            "is_wa_contact": null, "label_ids": label_ids, "labels": labels,
            "updated_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
        });
        self.with_store(|s| s.insert(contact.clone()));
        SimResponse::json(200, contact)
    }

    fn update(&self, digits: &str, req: &SimRequest) -> SimResponse {
        let body = req.json().unwrap_or(Value::Null);
        let keys = ["contact_name", "is_internal", "labels"];
        if !keys.iter().any(|k| body.get(k).is_some()) {
            return validation(
                "Invalid body. At least one of the following keys are required: contact_name, is_internal, labels",
                Value::Null,
            );
        }
        self.with_store(|s| {
            let Some(&i) = s.index.get(digits) else {
                return error(
                    404,
                    "NOT_FOUND",
                    "Not Found",
                    "Contact not found",
                    Value::Null,
                );
            };
            let c = &mut s.contacts[i];
            if let Some(name) = body.get("contact_name") {
                c["contact_name"] = name.clone();
            }
            if let Some(v) = body.get("is_internal") {
                c["is_internal"] = v.clone();
            }
            if let Some(csv) = body.get("labels").and_then(Value::as_str) {
                let (ids, names) = labels_of(csv);
                c["label_ids"] = Value::Object(ids);
                c["labels"] = json!(names);
            }
            c["updated_at"] =
                json!(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false));
            SimResponse::json(200, c.clone())
        })
    }

    fn replace_labels(&self, req: &SimRequest) -> SimResponse {
        let body = req.json().unwrap_or(Value::Null);
        let (Some(csv), Some(ids)) = (body["labels"].as_str(), body["contact_ids"].as_array())
        else {
            return validation(
                "Invalid body",
                json!({"labels": {"message": "labels and contact_ids are required"}}),
            );
        };
        let (label_ids, names) = labels_of(csv);
        self.with_store(|s| {
            for id in ids.iter().filter_map(Value::as_str) {
                let digits = id.split('@').next().unwrap_or("");
                if let Some(&i) = s.index.get(digits) {
                    s.contacts[i]["label_ids"] = Value::Object(label_ids.clone());
                    s.contacts[i]["labels"] = json!(names);
                }
            }
        });
        SimResponse::empty(204)
    }
}

/// `offset` and `limit` of a list call (limit ≤ 2000, 422 above).
fn paging(req: &SimRequest) -> Result<(usize, usize), SimResponse> {
    let number = |name: &str, default: u64| -> Result<u64, SimResponse> {
        match req.query.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                validation(
                    "Invalid query",
                    json!({name: {"message": format!("{name} must be a number"), "value": v}}),
                )
            }),
        }
    };
    let offset = number("offset", 0)? as usize;
    let limit = number("limit", 2000)? as usize;
    if limit > 2000 {
        return Err(validation(
            "Invalid query",
            json!({"limit": {"message": "Limit should be less than 2000", "value": limit.to_string()}}),
        ));
    }
    Ok((offset, limit))
}

pub type PeriskopeSim = SimServer<PeriskopeApi>;

/// Starts a Periskope simulator over the world's Periskope people.
pub async fn start(
    world: &World,
    api_key: &str,
    addr: SocketAddr,
    rate: Option<RateLimit>,
) -> std::io::Result<PeriskopeSim> {
    SimServer::start(
        PeriskopeApi::new(api_key, PeriskopeStore::from_world(world)),
        addr,
        rate,
        world.seed,
    )
    .await
}
