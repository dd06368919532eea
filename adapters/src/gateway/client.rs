//! The Gateway over HTTP. Remote ids are LIDs (`205227043110953` or `205227043110953@lid`).

use reqwest::header::AUTHORIZATION;

use crate::canonical::ContactRecord;
use crate::connection_config::ConnectionConfig;
use crate::error::{self, from_value, map_items, parse_json, AdapterError, ErrorReport};
use crate::gateway::map::{map_detail, map_list_item};
use crate::gateway::wire::{ContactList, ErrorBody};
use crate::paging::PageToken;
use crate::phone::normalize_lid;
use crate::provider::{ContactPage, Provider};
use crate::provider_kind::ProviderKind;
use crate::upstream::{Upstream, UpstreamRequest, UpstreamResponse, UpstreamStats};

/// The most a page holds (the Gateway clamps larger limits).
pub const MAX_PAGE: u32 = 200;

pub struct GatewayClient {
    upstream: Upstream,
    api_key: String,
    session: String,
    limit: u32,
}

/// The Gateway's error answer (`{error: {code, message, details}}`; huma's 422 is
/// coerced to 400 `validation_error`) as an `AdapterError`.
pub fn classify(res: &UpstreamResponse) -> AdapterError {
    let body: Option<ErrorBody> = serde_json::from_slice(&res.body).ok();
    let detail = body.map(|b| b.error).unwrap_or_default();
    // A 404 is "contact not found" unless the body says the session is unknown:
    // then every call of the connection fails the same way.
    if res.status == 404 {
        if let Some(message) = detail
            .message
            .as_deref()
            .filter(|m| m.to_ascii_lowercase().contains("session not found"))
        {
            return AdapterError::SessionMissing {
                message: message.to_string(),
            };
        }
    }
    error::classify(
        res.status,
        &res.body,
        ErrorReport {
            code: detail.code,
            message: detail.message,
            fields: detail.details.unwrap_or(serde_json::Value::Null),
        },
    )
}

/// The session id as a path segment: plain characters only.
fn session_segment(session: &str) -> Result<String, AdapterError> {
    let ok = !session.is_empty()
        && session.len() <= 200
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    ok.then(|| session.to_string()).ok_or_else(|| {
        AdapterError::InvalidInput(format!("`{session}` is not a Gateway session id"))
    })
}

impl GatewayClient {
    pub fn new(config: ConnectionConfig) -> Result<Self, AdapterError> {
        let session =
            session_segment(config.session.as_deref().ok_or_else(|| {
                AdapterError::InvalidInput("the Gateway needs a session".into())
            })?)?;
        Ok(Self {
            upstream: Upstream::new(
                "gateway",
                &config.base_url,
                config.upstream.clone(),
                config.quota(super::RATE_STYLE),
            )?,
            api_key: config.api_key,
            session,
            limit: MAX_PAGE,
        })
    }

    pub fn with_page_size(mut self, size: u32) -> Self {
        self.limit = size.clamp(1, MAX_PAGE);
        self
    }

    async fn call(&self, mut req: UpstreamRequest) -> Result<UpstreamResponse, AdapterError> {
        req.headers
            .push((AUTHORIZATION, format!("Bearer {}", self.api_key)));
        self.upstream.send_ok(&req, classify).await
    }
}

#[async_trait::async_trait]
impl Provider for GatewayClient {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Gateway
    }

    fn stats(&self) -> UpstreamStats {
        self.upstream.stats()
    }

    async fn get_contact(&self, remote_id: &str) -> Result<ContactRecord, AdapterError> {
        let lid = normalize_lid(remote_id).ok_or_else(|| {
            AdapterError::InvalidInput(format!(
                "`{remote_id}` is not a WhatsApp LID (`<digits>` or `<digits>@lid`)"
            ))
        })?;
        let res = self
            .call(
                UpstreamRequest::get(format!("/api/v1/sessions/{}/contacts/{lid}", self.session))
                    .operation("get_contact"),
            )
            .await?;
        map_detail(&lid, parse_json("Gateway contact detail", &res.body)?)
    }

    async fn list_contacts(&self, page: Option<&PageToken>) -> Result<ContactPage, AdapterError> {
        let mut req = UpstreamRequest::get(format!("/api/v1/sessions/{}/contacts", self.session))
            .operation("list_contacts")
            .query("limit", self.limit);
        if let Some(cursor) = page {
            req = req.query("cursor", &cursor.0);
        }
        let res = self.call(req).await?;
        let list: ContactList = from_value(
            "Gateway contact list",
            parse_json("Gateway contact list", &res.body)?,
        )?;
        let contacts = map_items("data", list.data, map_list_item)?;
        // An absent or empty cursor ends the list (the last page may be empty).
        let next = list.next_cursor.filter(|c| !c.is_empty()).map(PageToken);
        Ok(ContactPage {
            contacts,
            next,
            items_are_partial: true,
        })
    }
}
