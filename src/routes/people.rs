//! `/v1/people`: contacts linked across providers into people, with a merged view
//! that says which connection each merged value came from.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use unicontacts_adapters::canonical::{CanonicalContact, MembershipKind};
use unicontacts_adapters::ProviderKind;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::auth::{Authorized, ReadScope};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{cursor, parse_query};
use crate::routes::contacts::phone_param;
use crate::startup::AppState;
use crate::store::{contacts, people as queries};

/// A merged value and the connections it came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct Sourced<T> {
    pub value: T,
    pub connection_ids: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonPhone {
    pub e164: Option<String>,
    pub valid: bool,
    pub region: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonMembership {
    pub kind: MembershipKind,
    pub remote_id: String,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonView {
    #[schema(example = "per_01jd2x9v8c0000000000000000")]
    pub id: String,
    /// The best name, by the configured provider precedence.
    pub display_name: Option<Sourced<String>>,
    #[schema(value_type = Vec<Object>)]
    pub phones: Vec<Sourced<PersonPhone>>,
    #[schema(value_type = Vec<Object>)]
    pub emails: Vec<Sourced<String>>,
    #[schema(value_type = Vec<Object>)]
    pub wa_lids: Vec<Sourced<String>>,
    #[schema(value_type = Vec<Object>)]
    pub labels: Vec<Sourced<String>>,
    #[schema(value_type = Vec<Object>)]
    pub memberships: Vec<Sourced<PersonMembership>>,
    pub contacts: Vec<CanonicalContact>,
}

#[derive(Serialize, ToSchema)]
pub struct PersonPage {
    pub data: Vec<PersonView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPeopleQuery {
    /// Any written form; matched as E.164.
    pub phone: Option<String>,
    /// Case-insensitive substring of a contact's name, phone or email.
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub q: Option<String>,
    #[validate(range(min = 1, max = 200, message = "must be from 1 to 200"))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Adds `value` from `connection` to a union keyed by `key`, keeping first-seen order.
fn add<T>(
    union: &mut Vec<Sourced<T>>,
    index: &mut BTreeMap<String, usize>,
    key: String,
    value: T,
    connection: &str,
) {
    match index.get(&key) {
        Some(&i) => {
            if !union[i].connection_ids.iter().any(|c| c == connection) {
                union[i].connection_ids.push(connection.to_string());
            }
        }
        None => {
            index.insert(key, union.len());
            union.push(Sourced {
                value,
                connection_ids: vec![connection.to_string()],
            });
        }
    }
}

/// The merged view of one person's contacts (oldest first).
pub fn merge(
    id: String,
    contacts: Vec<CanonicalContact>,
    precedence: &[ProviderKind],
) -> PersonView {
    let display_name = precedence.iter().find_map(|p| {
        contacts.iter().filter(|c| c.provider == *p).find_map(|c| {
            c.record.display_name.clone().map(|n| Sourced {
                value: n,
                connection_ids: vec![c.connection_id.clone()],
            })
        })
    });
    let (mut phones, mut emails, mut lids, mut labels, mut memberships) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut pi, mut ei, mut li, mut lbi, mut mi) = Default::default();
    for c in &contacts {
        let conn = c.connection_id.as_str();
        for p in &c.record.phones {
            let key = p.e164.clone().unwrap_or_else(|| p.raw.clone());
            let value = PersonPhone {
                e164: p.e164.clone(),
                valid: p.valid,
                region: p.region.clone(),
            };
            add(&mut phones, &mut pi, key, value, conn);
        }
        for e in &c.record.emails {
            add(
                &mut emails,
                &mut ei,
                e.address.to_lowercase(),
                e.address.clone(),
                conn,
            );
        }
        if let Some(lid) = &c.record.wa_lid {
            add(&mut lids, &mut li, lid.clone(), lid.clone(), conn);
        }
        for l in &c.record.labels {
            add(&mut labels, &mut lbi, l.to_lowercase(), l.clone(), conn);
        }
        for m in &c.record.memberships {
            let value = PersonMembership {
                kind: m.kind,
                remote_id: m.remote_id.clone(),
                name: m.name.clone(),
            };
            add(
                &mut memberships,
                &mut mi,
                format!("{:?}:{}", m.kind, m.remote_id),
                value,
                conn,
            );
        }
    }
    PersonView {
        id,
        display_name,
        phones,
        emails,
        wa_lids: lids,
        labels,
        memberships,
        contacts,
    }
}

async fn views(
    state: &AppState,
    org_id: String,
    ids: Vec<String>,
) -> Result<Vec<PersonView>, ApiError> {
    let lookup = ids.clone();
    let rows = state
        .store
        .run(move |conn| queries::contacts_of(conn, &org_id, &lookup))
        .await?;
    let mut by_person: BTreeMap<String, Vec<CanonicalContact>> = BTreeMap::new();
    for row in &rows {
        if let Some(p) = &row.person_id {
            by_person
                .entry(p.clone())
                .or_default()
                .push(contacts::to_canonical(row, false)?);
        }
    }
    Ok(ids
        .into_iter()
        .map(|id| {
            let members = by_person.remove(&id).unwrap_or_default();
            merge(id, members, &state.settings.person_name_precedence)
        })
        .collect())
}

/// One person: the merged view and its contacts.
#[utoipa::path(get, path = "/v1/people/{id}", tag = "contacts",
    params(("id" = String, Path, description = "Person id (`per_…`)")),
    responses(
        (status = 200, description = "The person", body = PersonView),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks `contacts:read`", body = ErrorBody),
        (status = 404, description = "No such person in this org", body = ErrorBody),
        (status = 429, description = "Over this key's quota", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get_person(
    state: web::Data<AppState>,
    caller: Authorized<ReadScope>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, id) = (caller.0.org_id, path.into_inner());
    let (o, i) = (org_id.clone(), id.clone());
    if !state
        .store
        .run(move |conn| queries::person_exists(conn, &o, &i))
        .await?
    {
        return Err(ApiError::not_found("person"));
    }
    let mut found = views(&state, org_id, vec![id]).await?;
    Ok(HttpResponse::Ok().json(found.remove(0)))
}

/// People, oldest first, filtered by phone or text.
#[utoipa::path(get, path = "/v1/people", tag = "contacts",
    params(ListPeopleQuery),
    responses(
        (status = 200, description = "A page of people", body = PersonPage),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "The key lacks `contacts:read`", body = ErrorBody),
        (status = 422, description = "Invalid query parameter", body = ErrorBody),
        (status = 429, description = "Over this key's quota", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_people(
    state: web::Data<AppState>,
    caller: Authorized<ReadScope>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ListPeopleQuery = parse_query(req.query_string())?;
    let phone = q
        .phone
        .as_deref()
        .map(|p| phone_param(p, "phone"))
        .transpose()?;
    let text =
        q.q.map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty());
    let after = q.cursor.as_deref().map(cursor::decode).transpose()?;
    let limit = q.limit.unwrap_or(50) as usize;
    let org_id = caller.0.org_id;
    let o = org_id.clone();
    let ids = state
        .store
        .run(move |conn| {
            queries::list_people(
                conn,
                &o,
                phone.as_deref(),
                text.as_deref(),
                after.as_deref(),
                limit as i64 + 1,
            )
        })
        .await?;
    let (ids, next_cursor) = cursor::page(ids, limit, |s| s.as_str());
    Ok(HttpResponse::Ok().json(PersonPage {
        data: views(&state, org_id, ids).await?,
        next_cursor,
    }))
}
