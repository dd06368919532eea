//! Records every write through `/v1` in the audit log once it has been
//! answered: who (the key's org, id and prefix), what (the action its route
//! names), on which ids (the path's, and those the handler adds, such as a
//! created contact's), at which provider, the status, and the request id.
//! Requests without a valid key, and those refused by the key's quota, are not
//! actions of anyone and are not recorded.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest};
use unicontacts_adapters::ProviderKind;

use crate::ids;
use crate::service::audit;
use crate::state::State;
use crate::store::audit::AuditEventRow;

/// Who made the request, set by the `Caller` extractor once the key is known.
#[derive(Debug, Clone)]
pub struct Identity {
    pub org_id: String,
    pub key_id: String,
    pub key_prefix: String,
}

/// The request's id, set by the request-context middleware.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// What a handler adds to its request's audit event.
#[derive(Debug, Clone, Default)]
struct Note {
    targets: Vec<String>,
    provider: Option<ProviderKind>,
}

/// Adds `targets` (ids the path does not carry, such as a created one's) and the
/// provider written to, to the request's audit event.
pub fn note(
    req: &HttpRequest,
    targets: impl IntoIterator<Item = String>,
    provider: Option<ProviderKind>,
) {
    let mut ext = req.extensions_mut();
    let note = match ext.get_mut::<Note>() {
        Some(n) => n,
        None => {
            ext.insert(Note::default());
            match ext.get_mut::<Note>() {
                Some(n) => n,
                None => return,
            }
        }
    };
    note.targets.extend(targets);
    if provider.is_some() {
        note.provider = provider;
    }
}

/// The action a write route names, by its pattern.
fn action_of(method: &Method, pattern: &str) -> Option<&'static str> {
    crate::service::audit::ROUTE_ACTIONS
        .iter()
        .find(|(m, p, _)| *m == method.as_str() && *p == pattern)
        .map(|(_, _, action)| *action)
}

pub async fn audit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let writes = matches!(*req.method(), Method::POST | Method::PATCH | Method::DELETE);
    let res = next.call(req).await?.map_into_boxed_body();
    if !writes {
        return Ok(res);
    }
    let status = res.status().as_u16();
    let request = res.request();
    let Some(action) = request
        .match_pattern()
        .and_then(|p| action_of(request.method(), &p))
    else {
        return Ok(res);
    };
    let (identity, note, request_id) = {
        let ext = request.extensions();
        (
            ext.get::<Identity>().cloned(),
            ext.get::<Note>().cloned().unwrap_or_default(),
            ext.get::<RequestId>().map(|r| r.0.clone()),
        )
    };
    let Some(identity) = identity.filter(|_| status != 429) else {
        return Ok(res);
    };
    let Some(state) = request.app_data::<web::Data<State>>().cloned() else {
        return Ok(res);
    };
    let mut targets: Vec<String> = request
        .match_info()
        .iter()
        .map(|(_, v)| v.to_string())
        .collect();
    for t in note.targets {
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    let event = AuditEventRow {
        id: ids::new_id("aud"),
        org_id: identity.org_id,
        at: ids::now(),
        api_key_id: Some(identity.key_id),
        api_key_prefix: Some(identity.key_prefix),
        action: action.to_string(),
        target_ids: AuditEventRow::join_targets(&targets),
        provider: note.provider.map(|p| p.as_str().to_string()),
        status: i32::from(status),
        request_id: request_id.unwrap_or_default(),
    };
    audit::record(&state, event).await;
    Ok(res)
}
