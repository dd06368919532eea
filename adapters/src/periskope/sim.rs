//! A Periskope simulator: `/v1/contacts` (offset/limit ≤ 2000, `{contacts, count,
//! from, to}`), `/v1/contacts/{digits}` (with `chat_ids`), `POST /v1/contacts/create`,
//! `PATCH /v1/contacts/{digits}`, `PATCH /v1/contacts/labels`. Bearer key and
//! `x-phone` are required; errors are `{code, message, name, status, fields}`;
//! `X-RateLimit-*` on every reply.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Map, Value};

use crate::sim::{RateHeaders, RateLimit, SimApi, SimRequest, SimResponse, SimServer, World};

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
    /// digits → chat ids (only served by GET by id)
    chats: HashMap<String, Vec<String>>,
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
            let mut chats: Vec<String> = p
                .groups
                .iter()
                .map(|g| world.groups[*g].jid.clone())
                .collect();
            if p.has_dm {
                chats.push(format!("{phone}@c.us"));
            }
            store.chats.insert(phone.clone(), chats);
            store.insert(c);
        }
        store
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
        c["chat_ids"] = json!(self.chats.get(digits).cloned().unwrap_or_default());
        Some(c)
    }
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
        let offset = match number("offset", 0) {
            Ok(v) => v as usize,
            Err(e) => return e,
        };
        let limit = match number("limit", 2000) {
            Ok(v) => v as usize,
            Err(e) => return e,
        };
        if limit > 2000 {
            return validation(
                "Invalid query",
                json!({"limit": {"message": "Limit should be less than 2000", "value": limit.to_string()}}),
            );
        }
        self.with_store(|s| {
            let page: Vec<Value> = s
                .contacts
                .iter()
                .skip(offset)
                .take(limit)
                .cloned()
                .collect();
            let n = page.len();
            SimResponse::json(
                200,
                json!({"contacts": page, "count": s.len(), "from": offset + 1, "to": offset + n}),
            )
        })
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
            // one phone is refused (PROVIDERS.md lists duplicates as UNVERIFIED).
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
        self.with_store(|s| {
            s.insert(contact.clone());
            s.chats.entry(id.to_string()).or_default();
        });
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
