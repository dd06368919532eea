//! A WhatsApp Gateway simulator: stored contacts of one session, keyed by LID.
//! `GET /api/v1/sessions/{session}/contacts` (cursor = decimal row id, limit
//! clamped to 1–200, `nextCursor` only when the page is full, so the last page
//! may be empty) and `GET /api/v1/sessions/{session}/contacts/{lid}` (identity,
//! `dm`, groups with role and tag). Bearer or `x-api-key`; errors
//! `{"error": {code, message, details}}`; no rate-limit headers.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::harness::{Listing, RateHeaders, RateLimit, SimApi, SimRequest, SimResponse, SimServer};
use crate::world::World;

/// 2025-01-01T00:00:00Z in epoch milliseconds.
const BASE_MS: i64 = 1_735_689_600_000;

#[derive(Debug, Clone)]
pub struct StoredContact {
    /// The detail answer (identity, dm, groups).
    pub detail: Value,
}

#[derive(Debug, Default)]
pub struct GatewayStore {
    /// row id → contact, in id order (the list order).
    rows: BTreeMap<i64, StoredContact>,
    by_lid: HashMap<String, i64>,
    next_id: i64,
    /// What `GET .../contacts` serves.
    pub listing: Listing,
}

impl GatewayStore {
    pub fn from_world(world: &World) -> Self {
        let mut store = GatewayStore {
            next_id: 1024,
            ..GatewayStore::default()
        };
        for p in world.gateway_people() {
            let updated = BASE_MS + p.updated_minute * 60_000;
            let groups: Vec<Value> = p
                .groups
                .iter()
                .map(|g| {
                    let role = p.group_role();
                    json!({
                        "jid": world.groups[*g].jid,
                        "name": world.groups[*g].name,
                        "tag": format!("~{}", p.first_name),
                        "role": role,
                        "lastSeen": updated - (*g as i64) * 3_600_000,
                    })
                })
                .collect();
            let mut identity = json!({
                "id": 0,
                "lid": p.lid,
                "name": if p.index % 3 == 0 { p.first_name.clone() } else { p.display_name() },
                "firstSeenAt": updated - 86_400_000 * 30,
                "updatedAt": updated,
            });
            if let Some(phone) = &p.phone {
                identity["phoneNumber"] = json!(phone);
                identity["phoneJid"] = json!(format!("{phone}@s.whatsapp.net"));
            }
            if let Some(b) = &p.business_name {
                identity["businessName"] = json!(b);
            }
            store.insert(json!({"identity": identity, "dm": p.has_dm, "groups": groups}));
        }
        store
    }

    /// Stores a detail answer under a new row id (or replaces the one of its LID).
    pub fn insert(&mut self, mut detail: Value) -> i64 {
        let lid = detail["identity"]["lid"].as_str().unwrap_or("").to_string();
        let id = match self.by_lid.get(&lid) {
            Some(id) => *id,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                self.by_lid.insert(lid, id);
                id
            }
        };
        detail["identity"]["id"] = json!(id);
        self.rows.insert(id, StoredContact { detail });
        id
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn get(&self, lid: &str) -> Option<&Value> {
        self.by_lid
            .get(lid)
            .and_then(|id| self.rows.get(id))
            .map(|c| &c.detail)
    }

    pub fn get_mut(&mut self, lid: &str) -> Option<&mut Value> {
        let id = *self.by_lid.get(lid)?;
        self.rows.get_mut(&id).map(|c| &mut c.detail)
    }

    pub fn remove(&mut self, lid: &str) -> Option<Value> {
        let id = self.by_lid.remove(lid)?;
        self.rows.remove(&id).map(|c| c.detail)
    }

    pub fn all(&self) -> impl Iterator<Item = &Value> {
        self.rows.values().map(|c| &c.detail)
    }
}

fn list_item(detail: &Value) -> Value {
    let identity = &detail["identity"];
    let mut item = json!({
        "lid": identity["lid"],
        "source": if detail["dm"].as_bool() == Some(true) { "dm" } else { "group" },
    });
    for key in ["phoneNumber", "name", "businessName"] {
        if let Some(v) = identity.get(key).filter(|v| !v.is_null()) {
            item[key] = v.clone();
        }
    }
    item
}

pub struct GatewayApi {
    pub api_key: String,
    pub session: String,
    store: Mutex<GatewayStore>,
}

fn error(status: u16, code: &str, message: &str, details: Option<Value>) -> SimResponse {
    let mut e = json!({"code": code, "message": message});
    if let Some(d) = details {
        e["details"] = d;
    }
    SimResponse::json(status, json!({"error": e}))
}

impl GatewayApi {
    pub fn new(api_key: &str, session: &str, store: GatewayStore) -> Self {
        Self {
            api_key: api_key.to_string(),
            session: session.to_string(),
            store: Mutex::new(store),
        }
    }

    pub fn with_store<T>(&self, f: impl FnOnce(&mut GatewayStore) -> T) -> T {
        f(&mut self.store.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn list(&self, req: &SimRequest) -> SimResponse {
        // Out-of-range limits are clamped, not refused.
        let limit = req
            .query
            .get("limit")
            .and_then(|l| l.parse::<i64>().ok())
            .unwrap_or(50)
            .clamp(1, 200) as usize;
        let after = match req.query.get("cursor").filter(|c| !c.is_empty()) {
            None => 0,
            Some(c) => match c.parse::<i64>() {
                Ok(v) => v,
                Err(_) => {
                    return error(
                        400,
                        "validation_error",
                        "invalid cursor",
                        Some(json!({"errors": ["cursor is malformed"]})),
                    )
                }
            },
        };
        let source = req.query.get("source").cloned();
        if source.as_deref().is_some_and(|s| s != "dm" && s != "group") {
            return error(
                400,
                "validation_error",
                "invalid source",
                Some(json!({"errors": ["source must be dm or group"]})),
            );
        }
        self.with_store(|s| {
            let mut page = Vec::new();
            let mut last = None;
            // The first `shown` rows in list order are all the listing has.
            let shown = s.listing.shown(s.rows.len());
            let end = s.rows.keys().nth(shown).copied().unwrap_or(i64::MAX);
            for (id, c) in s.rows.range(after + 1..end.max(after + 1)) {
                let item = list_item(&c.detail);
                if source.as_deref().is_some_and(|src| item["source"] != src) {
                    continue;
                }
                page.push(item);
                last = Some(*id);
                if page.len() == limit {
                    break;
                }
            }
            let mut body = json!({"data": page});
            if page_full(&body, limit) {
                if let Some(id) = last {
                    body["nextCursor"] = json!(id.to_string());
                }
            }
            SimResponse::json(200, body)
        })
    }
}

fn page_full(body: &Value, limit: usize) -> bool {
    body["data"].as_array().is_some_and(|d| d.len() == limit)
}

impl SimApi for GatewayApi {
    fn rate_headers(&self) -> RateHeaders {
        RateHeaders::None
    }

    fn authorize(&self, req: &SimRequest) -> Result<(), SimResponse> {
        let token = req.bearer().or_else(|| req.header("x-api-key"));
        if token == Some(self.api_key.as_str()) {
            Ok(())
        } else {
            Err(error(
                401,
                "unauthorized",
                "missing or invalid credentials",
                None,
            ))
        }
    }

    fn error(&self, status: u16, code: &str, message: &str) -> SimResponse {
        let code = match status {
            429 => "rate_limited",
            503 => "gateway_unavailable",
            500 => "internal",
            _ => code,
        };
        error(status, code, message, None)
    }

    fn handle(&self, req: &SimRequest) -> SimResponse {
        let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
        match (req.method.as_str(), segments.as_slice()) {
            (method, ["api", "v1", "sessions", session, "contacts", rest @ ..]) => {
                if *session != self.session {
                    return error(404, "not_found", "session not found", None);
                }
                match (method, rest) {
                    ("GET", []) => self.list(req),
                    ("GET", [lid]) => self.with_store(|s| match s.get(lid) {
                        Some(detail) => SimResponse::json(200, detail.clone()),
                        None => error(404, "not_found", "contact not found", None),
                    }),
                    _ => error(404, "not_found", "route not found", None),
                }
            }
            _ => error(404, "not_found", "route not found", None),
        }
    }
}

pub type GatewaySim = SimServer<GatewayApi>;

pub async fn start(
    world: &World,
    api_key: &str,
    session: &str,
    addr: SocketAddr,
    rate: Option<RateLimit>,
) -> std::io::Result<GatewaySim> {
    SimServer::start(
        GatewayApi::new(api_key, session, GatewayStore::from_world(world)),
        addr,
        rate,
        world.seed,
    )
    .await
}
