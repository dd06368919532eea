//! WA.cr over HTTP. Remote ids are the integer ids as strings (`"42"`).

use reqwest::header::AUTHORIZATION;
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::canonical::ContactRecord;
use crate::connection_config::ConnectionConfig;
use crate::error::{self, map_items, parse_json, AdapterError, ErrorReport};
use crate::paging::PageToken;
use crate::provider::{BatchOutcome, ContactInput, ContactPage, Provider};
use crate::provider_kind::ProviderKind;
use crate::upstream::{Upstream, UpstreamRequest, UpstreamResponse, UpstreamStats};
use crate::wacr::map::map_contact_value;
use crate::wacr::wire::{read_error, unwrap_list, unwrap_resource};

/// The most a page holds.
pub const MAX_PAGE: u32 = 100;
/// Asked on every read, so statuses, sources and CRM lists come with their names.
pub const INCLUDE: &str = "groups,source,status";

pub struct WacrClient {
    upstream: Upstream,
    api_key: String,
    default_region: Option<String>,
    per_page: u32,
}

/// The integer id a path takes.
pub fn contact_id(remote_id: &str) -> Result<i64, AdapterError> {
    let s = remote_id.trim();
    s.parse::<i64>()
        .ok()
        .filter(|id| *id > 0 && s.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            AdapterError::InvalidInput(format!(
                "`{remote_id}` is not a WA.cr contact id (a positive integer)"
            ))
        })
}

/// WA.cr's error answer (Laravel's shapes, see `read_error`) as an `AdapterError`.
pub fn classify(res: &UpstreamResponse) -> AdapterError {
    let body: Value = serde_json::from_slice(&res.body).unwrap_or(Value::Null);
    let (code, message, fields) = read_error(&body);
    let report = ErrorReport {
        code,
        message,
        fields,
    };
    // Past a plan quota: the key is fine, the input is not accepted.
    if res.status == 403 && report.code.as_deref() == Some("FEATURE_LIMIT_EXCEEDED") {
        return error::classify(422, &res.body, report).with_status(403);
    }
    error::classify(res.status, &res.body, report)
}

/// A write's body in WA.cr's field names (docs/providers.md §2.3).
fn body_of(input: &ContactInput) -> Value {
    let mut body = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            body.insert(k.to_string(), v);
        }
    };
    let text = |v: &Option<String>| v.clone().map(Value::String);
    put("firstname", text(&input.first_name));
    put("lastname", text(&input.last_name));
    put("phone", text(&input.phone));
    put("email", text(&input.email));
    put("company", text(&input.company));
    put(
        "type",
        input.kind.map(|k| Value::String(k.as_str().to_string())),
    );
    put("description", text(&input.notes));
    put("status_id", input.status_id.map(Value::from));
    put("source_id", input.source_id.map(Value::from));
    put("groups", input.crm_list_ids.as_ref().map(|ids| json!(ids)));
    if let Some(a) = &input.address {
        put("address", text(&a.street));
        put("city", text(&a.city));
        put("state", text(&a.state));
        put("zip", text(&a.postal_code));
    }
    Value::Object(body)
}

/// Our field name for one of WA.cr's (in its validation errors).
pub fn canonical_field(wacr: &str) -> &str {
    match wacr {
        "firstname" => "first_name",
        "lastname" => "last_name",
        "type" => "kind",
        "description" => "notes",
        "groups" | "groups.*" => "crm_list_ids",
        "address" => "address.street",
        "city" => "address.city",
        "state" => "address.state",
        "zip" => "address.postal_code",
        other => other,
    }
}

impl WacrClient {
    pub fn new(config: ConnectionConfig) -> Result<Self, AdapterError> {
        Ok(Self {
            upstream: Upstream::new(
                "wacr",
                &config.base_url,
                config.upstream.clone(),
                config.quota(super::RATE_STYLE),
            )?,
            api_key: config.api_key,
            default_region: config.default_country,
            per_page: MAX_PAGE,
        })
    }

    pub fn with_page_size(mut self, size: u32) -> Self {
        self.per_page = size.clamp(1, MAX_PAGE);
        self
    }

    async fn call(&self, mut req: UpstreamRequest) -> Result<UpstreamResponse, AdapterError> {
        req.headers
            .push((AUTHORIZATION, format!("Bearer {}", self.api_key)));
        self.upstream.send_ok(&req, classify).await
    }

    fn map(&self, raw: Value) -> Result<ContactRecord, AdapterError> {
        map_contact_value(raw, self.default_region.as_deref())
    }

    async fn fetch(&self, id: i64) -> Result<ContactRecord, AdapterError> {
        let res = self
            .call(
                UpstreamRequest::get(format!("/contacts/{id}"))
                    .query("include", INCLUDE)
                    .operation("get_contact"),
            )
            .await?;
        self.map(unwrap_resource(parse_json("WA.cr contact", &res.body)?)?)
    }
}

#[async_trait::async_trait]
impl Provider for WacrClient {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Wacr
    }

    fn stats(&self) -> UpstreamStats {
        self.upstream.stats()
    }

    async fn get_contact(&self, remote_id: &str) -> Result<ContactRecord, AdapterError> {
        self.fetch(contact_id(remote_id)?).await
    }

    async fn list_contacts(&self, page: Option<&PageToken>) -> Result<ContactPage, AdapterError> {
        let number: u64 = match page {
            None => 1,
            Some(t) => t.0.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                AdapterError::InvalidInput(format!("bad WA.cr page token `{}`", t.0))
            })?,
        };
        let req = UpstreamRequest::get("/contacts")
            .operation("list_contacts")
            .query("page", number)
            .query("per_page", self.per_page)
            .query("include", INCLUDE);
        let res = self.call(req).await?;
        let page = unwrap_list(parse_json("WA.cr contact list", &res.body)?)?;
        let n = page.items.len() as u64;
        let contacts = map_items("data", page.items, |raw| self.map(raw))?;
        let last_page = page.meta.as_ref().and_then(|m| m.last_page);
        // An empty page must be the last one: `data` and `meta.last_page` that
        // disagree end the listing early, and a listing that ended early must
        // not be taken for complete (what it lacks would look deleted).
        if n == 0 {
            if let Some(last) = last_page.filter(|last| number < *last) {
                return Err(AdapterError::decode(format!(
                    "WA.cr contact list: page {number} came back empty while `meta.last_page` \
                     says {last}; the listing ended early"
                )));
            }
        }
        // The paginator's own word first; a short page ends the list otherwise.
        let more = match (last_page, &page.next_link) {
            (Some(last), _) => number < last,
            (None, Some(next)) => next.is_some(),
            (None, None) => n >= u64::from(self.per_page),
        };
        Ok(ContactPage {
            contacts,
            next: (more && n > 0).then(|| PageToken((number + 1).to_string())),
            items_are_partial: false,
        })
    }

    async fn create_contact(&self, input: &ContactInput) -> Result<ContactRecord, AdapterError> {
        let res = self
            .call(
                UpstreamRequest::with_body(Method::POST, "/contacts", body_of(input))
                    .operation("create_contact"),
            )
            .await?;
        let created = unwrap_resource(parse_json("WA.cr contact", &res.body)?)?;
        // The answer carries the groups; ask again for source and status names too.
        let id = created
            .get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| AdapterError::decode("WA.cr create: the answer has no `id`"))?;
        self.fetch(id).await
    }

    async fn update_contact(
        &self,
        remote_id: &str,
        input: &ContactInput,
    ) -> Result<ContactRecord, AdapterError> {
        let id = contact_id(remote_id)?;
        self.call(
            UpstreamRequest::with_body(Method::PATCH, format!("/contacts/{id}"), body_of(input))
                .operation("update_contact")
                .idempotent(true),
        )
        .await?;
        self.fetch(id).await
    }

    async fn delete_contact(&self, remote_id: &str) -> Result<(), AdapterError> {
        let id = contact_id(remote_id)?;
        let mut req = UpstreamRequest::get(format!("/contacts/{id}")).operation("delete_contact");
        req.method = Method::DELETE;
        self.call(req).await?;
        Ok(())
    }

    async fn batch_create(&self, inputs: &[ContactInput]) -> Result<BatchOutcome, AdapterError> {
        let body = json!({
            "contacts": inputs.iter().map(body_of).collect::<Vec<_>>(),
            "options": {"continue_on_error": true, "skip_duplicates": false},
        });
        let res = self
            .call(
                UpstreamRequest::with_body(Method::POST, "/contacts/batch", body)
                    .operation("batch_create"),
            )
            .await?;
        let answer = parse_json("WA.cr batch create", &res.body)?;
        let answer = match answer.get("data") {
            Some(inner @ Value::Object(_)) => inner.clone(),
            _ => answer,
        };
        let created = answer
            .get("created")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|raw| self.map(raw))
            .collect::<Result<Vec<_>, _>>()?;
        let mut failures = Vec::new();
        for key in ["errors", "skipped"] {
            for item in answer
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let index = item
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(u64::MAX) as usize;
                // Laravel's field messages, in our field names, say most.
                let fields: Vec<String> = item
                    .get("errors")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .flat_map(|(field, messages)| {
                        let field = canonical_field(field).to_string();
                        let messages: Vec<String> = match messages {
                            Value::Array(list) => list
                                .iter()
                                .map(|m| {
                                    m.as_str()
                                        .map(str::to_string)
                                        .unwrap_or_else(|| m.to_string())
                                })
                                .collect(),
                            other => vec![other
                                .as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| other.to_string())],
                        };
                        messages.into_iter().map(move |m| format!("{field}: {m}"))
                    })
                    .collect();
                let reason = (!fields.is_empty())
                    .then(|| fields.join("; "))
                    .or_else(|| {
                        item.get("reason")
                            .or_else(|| item.get("message"))
                            .or_else(|| item.get("error"))
                            .map(|v| {
                                v.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| v.to_string())
                            })
                    })
                    .unwrap_or_else(|| key.to_string());
                failures.push((index, reason));
            }
        }
        Ok(BatchOutcome {
            succeeded_count: created.len() as u64,
            failed_count: failures.len() as u64,
            created,
            failures,
        })
    }

    async fn batch_delete(&self, remote_ids: &[String]) -> Result<BatchOutcome, AdapterError> {
        let ids = remote_ids
            .iter()
            .map(|id| contact_id(id))
            .collect::<Result<Vec<_>, _>>()?;
        let body = json!({ "ids": ids });
        let res = self
            .call(
                UpstreamRequest::with_body(Method::DELETE, "/contacts/batch", body)
                    .operation("batch_delete"),
            )
            .await?;
        let answer = parse_json("WA.cr batch delete", &res.body)?;
        let summary = answer
            .get("summary")
            .or_else(|| answer.get("data").and_then(|d| d.get("summary")))
            .ok_or_else(|| AdapterError::decode("WA.cr batch delete: no `summary`"))?;
        let count = |k: &str| summary.get(k).and_then(Value::as_u64).unwrap_or(0);
        Ok(BatchOutcome {
            created: Vec::new(),
            succeeded_count: count("deleted"),
            // Unknown or foreign ids count as failed; which ones is not said.
            failed_count: count("failed"),
            failures: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_integers() {
        assert_eq!(contact_id("42").expect("42"), 42);
        assert_eq!(contact_id(" 7 ").expect("7"), 7);
        for bad in ["0", "-3", "4.2", "abc", "42abc", "+42"] {
            assert!(contact_id(bad).is_err(), "{bad}");
        }
    }
}
