//! A WA.cr simulator (Laravel-style API v2 under `/api/v2`): contacts with
//! page/per_page (≤ 100) and `include=groups,source,status`, full CRUD, batch create
//! and batch delete. Resources come in `{"success", "data"}`, lists with `meta` and
//! `links`; errors as `{"success": false, "error": {code, message, details}}`, and
//! Laravel's `{"message": "Too Many Attempts."}` on 429.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use chrono::{Duration, TimeZone, Utc};
use serde_json::{json, Map, Value};

use crate::harness::{Listing, RateHeaders, RateLimit, SimApi, SimRequest, SimResponse, SimServer};
use crate::world::World;

pub const STATUSES: [(i64, &str, &str); 4] = [
    (1, "New", "#3B82F6"),
    (2, "Qualified", "#22C55E"),
    (3, "Customer", "#A855F7"),
    (4, "Lost", "#EF4444"),
];
pub const SOURCES: [(i64, &str); 4] = [
    (1, "Website"),
    (2, "Instagram"),
    (3, "Referral"),
    (4, "WhatsApp"),
];
pub const LISTS: [(i64, &str); 3] = [(1, "VIP"), (2, "Newsletter"), (3, "Wholesale")];
const TYPES: [&str; 3] = ["lead", "customer", "guest"];
const STAMP: &str = "2025-01-01T00:00:00.000000Z";

fn stamp(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[derive(Debug, Default)]
pub struct WacrStore {
    contacts: BTreeMap<i64, Value>,
    next_id: i64,
    /// What `GET /contacts` serves.
    pub listing: Listing,
}

fn phone_key(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

impl WacrStore {
    pub fn from_world(world: &World) -> Self {
        let base = Utc
            .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let mut store = WacrStore {
            contacts: BTreeMap::new(),
            next_id: 1,
            listing: Default::default(),
        };
        for p in world.wacr_people() {
            let Some(digits) = &p.phone else { continue };
            let cc = p.calling_code();
            // Free text, as people type it.
            let phone = match p.index % 5 {
                0 => digits.clone(),
                1 | 2 => format!("+{digits}"),
                _ => format!("+{cc} {}", &digits[cc.len()..]),
            };
            let created = base + Duration::minutes(p.updated_minute / 2);
            let id = store.next_id;
            store.next_id += 1;
            let lists: Vec<i64> = p
                .groups
                .iter()
                .map(|g| LISTS[g % LISTS.len()].0)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            store.contacts.insert(
                id,
                json!({
                    "id": id,
                    "firstname": p.first_name,
                    "lastname": p.last_name,
                    "company": p.business_name,
                    "type": TYPES[p.index % 3],
                    "email": p.email,
                    "phone": phone,
                    "status_id": STATUSES[p.index % 4].0,
                    "source_id": SOURCES[p.index % 4].0,
                    "description": if p.index % 6 == 0 { json!("Asked for a catalogue") } else { Value::Null },
                    "city": null, "state": null, "zip": null, "address": null,
                    "country_id": null,
                    "assigned_id": if p.index % 3 == 0 { json!(p.index % 5 + 1) } else { Value::Null },
                    "group_id": lists,
                    "is_opted_out": p.index % 17 == 0,
                    "created_at": stamp(created),
                    "updated_at": stamp(base + Duration::minutes(p.updated_minute)),
                }),
            );
        }
        store
    }

    pub fn len(&self) -> usize {
        self.contacts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty()
    }

    pub fn get(&self, id: i64) -> Option<&Value> {
        self.contacts.get(&id)
    }

    pub fn get_mut(&mut self, id: i64) -> Option<&mut Value> {
        self.contacts.get_mut(&id)
    }

    pub fn remove(&mut self, id: i64) -> Option<Value> {
        self.contacts.remove(&id)
    }

    /// Puts a contact (back) under its `id`.
    pub fn restore(&mut self, contact: Value) {
        if let Some(id) = contact["id"].as_i64() {
            self.contacts.insert(id, contact);
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Value> {
        self.contacts.values()
    }

    fn phone_taken(&self, phone: &str, except: Option<i64>) -> bool {
        let key = phone_key(phone);
        self.contacts.iter().any(|(id, c)| {
            Some(*id) != except
                && c["phone"].as_str().map(phone_key).as_deref() == Some(key.as_str())
        })
    }
}

pub struct WacrApi {
    pub api_key: String,
    store: Mutex<WacrStore>,
}

fn fail(status: u16, code: &str, message: &str, details: Value) -> SimResponse {
    SimResponse::json(
        status,
        json!({"success": false, "error": {"code": code, "message": message, "details": details}}),
    )
}

fn with_includes(contact: &Value, include: &str) -> Value {
    let mut c = contact.clone();
    let wants: Vec<&str> = include.split(',').map(str::trim).collect();
    if wants.contains(&"groups") {
        let ids: Vec<i64> = c["group_id"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .collect();
        c["groups"] = json!(LISTS
            .iter()
            .filter(|(id, _)| ids.contains(id))
            .map(|(id, name)| json!({"id": id, "name": name, "created_at": STAMP, "updated_at": STAMP}))
            .collect::<Vec<_>>());
    }
    if wants.contains(&"source") {
        c["source"] = SOURCES
            .iter()
            .find(|(id, _)| Some(*id) == contact["source_id"].as_i64())
            .map(|(id, name)| json!({"id": id, "name": name, "created_at": STAMP, "updated_at": STAMP}))
            .unwrap_or(Value::Null);
    }
    if wants.contains(&"status") {
        c["status"] = STATUSES
            .iter()
            .find(|(id, _, _)| Some(*id) == contact["status_id"].as_i64())
            .map(|(id, name, color)| json!({"id": id, "name": name, "color": color, "created_at": STAMP, "updated_at": STAMP}))
            .unwrap_or(Value::Null);
    }
    c
}

/// Laravel-like validation of a create (all required) or an update (all optional).
fn validate(
    body: &Value,
    creating: bool,
    store: &WacrStore,
    except: Option<i64>,
) -> Map<String, Value> {
    let mut errors = Map::new();
    let mut add = |field: &str, msg: &str| {
        errors.insert(field.to_string(), json!([msg]));
    };
    let present = |k: &str| body.get(k).is_some_and(|v| !v.is_null());
    let text_ok = |k: &str, max: usize| {
        body[k]
            .as_str()
            .is_some_and(|s| !s.trim().is_empty() && s.chars().count() <= max)
    };
    if (creating || present("firstname")) && !text_ok("firstname", 255) {
        add("firstname", "First name is required");
    }
    if (creating || present("lastname")) && !text_ok("lastname", 255) {
        add("lastname", "Last name is required");
    }
    if creating || present("phone") {
        if !text_ok("phone", 20) {
            add("phone", "Phone is required (max 20 characters)");
        } else if store.phone_taken(body["phone"].as_str().unwrap_or(""), except) {
            add("phone", "This phone number already exists");
        }
    }
    if (creating || present("type")) && !body["type"].as_str().is_some_and(|t| TYPES.contains(&t)) {
        add("type", "Type must be either lead, customer, or guest");
    }
    if (creating || present("status_id"))
        && !STATUSES
            .iter()
            .any(|(id, _, _)| Some(*id) == body["status_id"].as_i64())
    {
        add(
            "status_id",
            "The selected status does not exist or does not belong to your account",
        );
    }
    if (creating || present("source_id"))
        && !SOURCES
            .iter()
            .any(|(id, _)| Some(*id) == body["source_id"].as_i64())
    {
        add(
            "source_id",
            "The selected source does not exist or does not belong to your account",
        );
    }
    if present("email") {
        let email = body["email"].as_str().unwrap_or("");
        if !email.contains('@') {
            add("email", "The email must be a valid email address");
        } else if store
            .contacts
            .iter()
            .any(|(id, c)| Some(*id) != except && c["email"].as_str() == Some(email))
        {
            add("email", "This email address already exists");
        }
    }
    errors
}

const WRITABLE: [&str; 15] = [
    "firstname",
    "lastname",
    "company",
    "type",
    "email",
    "phone",
    "status_id",
    "source_id",
    "description",
    "city",
    "state",
    "zip",
    "address",
    "country_id",
    "assigned_id",
];

impl WacrApi {
    pub fn new(api_key: &str, store: WacrStore) -> Self {
        Self {
            api_key: api_key.to_string(),
            store: Mutex::new(store),
        }
    }

    pub fn with_store<T>(&self, f: impl FnOnce(&mut WacrStore) -> T) -> T {
        f(&mut self.store.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn list(&self, req: &SimRequest) -> SimResponse {
        let page: usize = match req.query.get("page").map(|p| p.parse::<usize>()) {
            None => 1,
            Some(Ok(p)) if p >= 1 => p,
            _ => {
                return fail(
                    422,
                    "VALIDATION_ERROR",
                    "The given data was invalid.",
                    json!({"page": ["The page must be at least 1."]}),
                )
            }
        };
        let per_page: usize = match req.query.get("per_page").map(|p| p.parse::<usize>()) {
            None => 15,
            Some(Ok(p)) if (1..=100).contains(&p) => p,
            _ => {
                return fail(
                    422,
                    "VALIDATION_ERROR",
                    "The given data was invalid.",
                    json!({"per_page": ["The per page must be between 1 and 100."]}),
                )
            }
        };
        let include = req.query.get("include").cloned().unwrap_or_default();
        self.with_store(|s| {
            let listing = s.listing;
            let total = listing.shown(s.len());
            let last_page = total.div_ceil(per_page).max(1);
            let skip = match listing {
                Listing::EmptyAfterFirstPage if page > 1 => total,
                _ => (page - 1) * per_page,
            };
            let data: Vec<Value> = s
                .contacts
                .values()
                .take(total)
                .skip(skip)
                .take(per_page)
                .map(|c| with_includes(c, &include))
                .collect();
            let link = |p: usize| Value::String(format!("/api/v2/contacts?page={p}"));
            SimResponse::json(
                200,
                json!({
                    "success": true,
                    "data": data,
                    "meta": {"current_page": page, "last_page": last_page, "per_page": per_page, "total": total},
                    "links": {
                        "first": link(1), "last": link(last_page),
                        "prev": if page > 1 { link(page - 1) } else { Value::Null },
                        "next": if page < last_page { link(page + 1) } else { Value::Null },
                    },
                }),
            )
        })
    }

    fn create_one(s: &mut WacrStore, body: &Value) -> Result<Value, Map<String, Value>> {
        let errors = validate(body, true, s, None);
        if !errors.is_empty() {
            return Err(errors);
        }
        let id = s.next_id;
        s.next_id += 1;
        let now = stamp(Utc::now());
        let mut c = json!({"id": id, "group_id": body.get("groups").cloned().unwrap_or(json!([])), "is_opted_out": false, "created_at": now, "updated_at": now});
        for k in WRITABLE {
            c[k] = body.get(k).cloned().unwrap_or(Value::Null);
        }
        s.contacts.insert(id, c.clone());
        Ok(c)
    }

    fn batch_create(&self, req: &SimRequest) -> SimResponse {
        let body = req.json().unwrap_or(Value::Null);
        let Some(items) = body["contacts"].as_array() else {
            return fail(
                422,
                "VALIDATION_ERROR",
                "The given data was invalid.",
                json!({"contacts": ["The contacts field is required."]}),
            );
        };
        let continue_on_error = body["options"]["continue_on_error"]
            .as_bool()
            .unwrap_or(true);
        let skip_duplicates = body["options"]["skip_duplicates"]
            .as_bool()
            .unwrap_or(false);
        self.with_store(|s| {
            let (mut created, mut skipped, mut errors) = (Vec::new(), Vec::new(), Vec::new());
            for (index, item) in items.iter().enumerate() {
                if skip_duplicates && s.phone_taken(item["phone"].as_str().unwrap_or(""), None) {
                    skipped.push(json!({"index": index, "reason": "duplicate phone", "data": item}));
                    continue;
                }
                match Self::create_one(s, item) {
                    Ok(c) => created.push(with_includes(&c, "groups")),
                    Err(e) => {
                        errors.push(json!({"index": index, "errors": e, "message": "validation failed"}));
                        if !continue_on_error {
                            break;
                        }
                    }
                }
            }
            SimResponse::json(
                200,
                json!({
                    "success": errors.is_empty(),
                    "summary": {"total": items.len(), "created": created.len(), "skipped": skipped.len(), "failed": errors.len()},
                    "created": created, "skipped": skipped, "errors": errors,
                }),
            )
        })
    }

    fn batch_delete(&self, req: &SimRequest) -> SimResponse {
        let body = req.json().unwrap_or(Value::Null);
        let Some(ids) = body["ids"].as_array() else {
            return fail(
                422,
                "VALIDATION_ERROR",
                "The given data was invalid.",
                json!({"ids": ["The ids field is required."]}),
            );
        };
        self.with_store(|s| {
            let deleted = ids.iter().filter_map(Value::as_i64).filter(|id| s.contacts.remove(id).is_some()).count();
            SimResponse::json(
                200,
                json!({"success": true, "summary": {"total": ids.len(), "deleted": deleted, "failed": ids.len() - deleted}}),
            )
        })
    }

    fn update(&self, id: i64, req: &SimRequest) -> SimResponse {
        let body = req.json().unwrap_or(Value::Null);
        self.with_store(|s| {
            if !s.contacts.contains_key(&id) {
                return fail(404, "NOT_FOUND", "Contact not found", Value::Null);
            }
            let errors = validate(&body, false, s, Some(id));
            if !errors.is_empty() {
                return fail(422, "VALIDATION_ERROR", "The given data was invalid.", Value::Object(errors));
            }
            let Some(c) = s.contacts.get_mut(&id) else {
                return fail(404, "NOT_FOUND", "Contact not found", Value::Null);
            };
            for k in WRITABLE {
                if let Some(v) = body.get(k) {
                    c[k] = v.clone();
                }
            }
            if let Some(groups) = body.get("groups") {
                // `groups` replaces every assignment.
                c["group_id"] = groups.clone();
            }
            c["updated_at"] = json!(stamp(Utc::now()));
            SimResponse::json(200, json!({"success": true, "message": "Contact updated successfully", "data": with_includes(c, "groups")}))
        })
    }
}

impl SimApi for WacrApi {
    fn prefix(&self) -> &'static str {
        "/api/v2"
    }

    fn rate_headers(&self) -> RateHeaders {
        RateHeaders::Laravel
    }

    fn authorize(&self, req: &SimRequest) -> Result<(), SimResponse> {
        if req.bearer() == Some(self.api_key.as_str()) {
            Ok(())
        } else {
            Err(fail(401, "UNAUTHORIZED", "Unauthenticated.", Value::Null))
        }
    }

    fn error(&self, status: u16, code: &str, message: &str) -> SimResponse {
        match status {
            429 => SimResponse::json(429, json!({"message": "Too Many Attempts."})),
            500 => fail(500, "INTERNAL_ERROR", message, Value::Null),
            _ => fail(status, &code.to_uppercase(), message, Value::Null),
        }
    }

    fn handle(&self, req: &SimRequest) -> SimResponse {
        let path = req.path.strip_prefix("/api/v2").unwrap_or("");
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let include = req.query.get("include").cloned().unwrap_or_default();
        match (req.method.as_str(), segments.as_slice()) {
            ("GET", ["contacts"]) => self.list(req),
            ("POST", ["contacts", "batch"]) => self.batch_create(req),
            ("DELETE", ["contacts", "batch"]) => self.batch_delete(req),
            ("POST", ["contacts"]) => {
                let body = req.json().unwrap_or(Value::Null);
                self.with_store(|s| match Self::create_one(s, &body) {
                    Ok(c) => SimResponse::json(201, json!({"success": true, "message": "Contact created successfully", "data": with_includes(&c, "groups")})),
                    Err(errors) => fail(422, "VALIDATION_ERROR", "The given data was invalid.", Value::Object(errors)),
                })
            }
            (method, ["contacts", id]) => {
                let Ok(id) = id.parse::<i64>() else {
                    return fail(404, "NOT_FOUND", "Contact not found", Value::Null);
                };
                match method {
                    "GET" => self.with_store(|s| match s.get(id) {
                        Some(c) => SimResponse::json(
                            200,
                            json!({"success": true, "data": with_includes(c, &include)}),
                        ),
                        None => fail(404, "NOT_FOUND", "Contact not found", Value::Null),
                    }),
                    "PATCH" | "PUT" => self.update(id, req),
                    "DELETE" => self.with_store(|s| match s.remove(id) {
                        Some(_) => SimResponse::json(
                            200,
                            json!({"success": true, "message": "Contact deleted successfully"}),
                        ),
                        None => fail(404, "NOT_FOUND", "Contact not found", Value::Null),
                    }),
                    _ => fail(405, "METHOD_NOT_ALLOWED", "Method not allowed", Value::Null),
                }
            }
            _ => fail(404, "NOT_FOUND", "Route not found", Value::Null),
        }
    }
}

pub type WacrSim = SimServer<WacrApi>;

pub async fn start(
    world: &World,
    api_key: &str,
    addr: SocketAddr,
    rate: Option<RateLimit>,
) -> std::io::Result<WacrSim> {
    SimServer::start(
        WacrApi::new(api_key, WacrStore::from_world(world)),
        addr,
        rate,
        world.seed,
    )
    .await
}
