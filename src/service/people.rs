//! People: contacts linked across providers (by phone and WhatsApp LID), each
//! with a merged view that says which connection every merged value came from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use unicontacts_adapters::canonical::{CanonicalContact, MembershipKind};
use unicontacts_adapters::ProviderKind;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::change::{self, link::LinkCounts, Scope};
use crate::error::ApiError;
use crate::page::{Page, PageRequest};
use crate::service::contacts::phone_param;
use crate::state::State;
use crate::store::events::Cause;
use crate::store::models::Org;
use crate::store::{contacts, orgs, people as queries, Store};

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

/// One group or list the person is in, however many providers show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonMembership {
    pub kind: MembershipKind,
    pub remote_id: String,
    /// The first name a provider gives it.
    pub name: Option<String>,
    /// What each connection says of it.
    pub seen_as: Vec<MembershipSource>,
}

/// A membership as one connection gives it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipSource {
    pub connection_id: String,
    pub provider: ProviderKind,
    pub name: Option<String>,
    /// `member`, `admin` or `superadmin`, where the provider says.
    pub role: Option<String>,
    pub nickname: Option<String>,
}

/// A custom property of a CRM, by name (or the provider's property id).
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonProperty {
    pub name: String,
    pub value: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonView {
    #[schema(example = "per_01jd2x9v8c0000000000000000")]
    pub id: String,
    /// The best name, by the configured provider precedence.
    pub display_name: Option<Sourced<String>>,
    pub phones: Vec<Sourced<PersonPhone>>,
    pub emails: Vec<Sourced<String>>,
    pub wa_lids: Vec<Sourced<String>>,
    pub labels: Vec<Sourced<String>>,
    pub memberships: Vec<Sourced<PersonMembership>>,
    /// Who owns the conversation, per provider.
    pub assignees: Vec<Sourced<String>>,
    pub custom_properties: Vec<Sourced<PersonProperty>>,
    pub chat_labels: Vec<Sourced<String>>,
    pub contacts: Vec<CanonicalContact>,
    /// On the answer of a merge or a split: the operation's id (`idop_…`),
    /// which undoes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
}

/// The filters of `GET /v1/people`.
#[derive(Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PeopleFilters {
    /// Any written form; matched as E.164.
    #[param(pattern = r"^\+?[0-9][0-9 ().-]{4,30}(@c\.us)?$")]
    pub phone: Option<String>,
    /// Case-insensitive substring of a contact's name, phone or email.
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    #[param(min_length = 1, max_length = 200)]
    pub q: Option<String>,
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
    let (mut phones, mut emails, mut lids, mut labels) = (vec![], vec![], vec![], vec![]);
    let (mut pi, mut ei, mut li, mut lbi) = Default::default();
    let mut memberships: Vec<Sourced<PersonMembership>> = vec![];
    let mut mi: BTreeMap<String, usize> = BTreeMap::new();
    let (mut assignees, mut properties, mut chat_labels) = (vec![], vec![], vec![]);
    let (mut ai, mut cpi, mut cli) = Default::default();
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
            // One entry per group: a group seen at two providers is one membership.
            let at = *mi
                .entry(format!("{:?}:{}", m.kind, m.remote_id))
                .or_insert_with(|| {
                    memberships.push(Sourced {
                        value: PersonMembership {
                            kind: m.kind,
                            remote_id: m.remote_id.clone(),
                            name: None,
                            seen_as: Vec::new(),
                        },
                        connection_ids: Vec::new(),
                    });
                    memberships.len() - 1
                });
            let entry = &mut memberships[at];
            if !entry.connection_ids.iter().any(|id| id == conn) {
                entry.connection_ids.push(conn.to_string());
            }
            if entry.value.name.is_none() {
                entry.value.name.clone_from(&m.name);
            }
            entry.value.seen_as.push(MembershipSource {
                connection_id: conn.to_string(),
                provider: c.provider,
                name: m.name.clone(),
                role: m.role.clone(),
                nickname: m.nickname.clone(),
            });
        }
        if let Some(a) = &c.record.assignee {
            add(&mut assignees, &mut ai, a.clone(), a.clone(), conn);
        }
        for (name, value) in &c.record.custom_properties {
            let property = PersonProperty {
                name: name.clone(),
                value: value.clone(),
            };
            add(
                &mut properties,
                &mut cpi,
                format!("{name}={value}"),
                property,
                conn,
            );
        }
        for l in &c.record.chat_labels {
            add(&mut chat_labels, &mut cli, l.clone(), l.clone(), conn);
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
        assignees,
        custom_properties: properties,
        chat_labels,
        contacts,
        operation_id: None,
    }
}

/// One person's view, read on `conn` (inside a unit of work: a dry run's
/// answer is read before its transaction rolls back).
pub fn view_on(
    conn: &mut crate::store::DbConnection,
    org_id: &str,
    id: &str,
    precedence: &[ProviderKind],
) -> Result<PersonView, crate::store::StoreError> {
    let rows = queries::contacts_of(conn, org_id, &[id.to_string()])?;
    let contacts = rows
        .iter()
        .map(|row| contacts::to_canonical(row, false))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(merge(id.to_string(), contacts, precedence))
}

/// The views of these people, in the order given.
async fn views(
    state: &State,
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

/// One of the org's people: the merged view and its contacts.
pub async fn get(state: &State, org_id: &str, id: &str) -> Result<PersonView, ApiError> {
    let (o, i) = (org_id.to_string(), id.to_string());
    state
        .store
        .run(move |conn| crate::store::identity::require_person(conn, &o, &i))
        .await?;
    views(state, org_id.to_string(), vec![id.to_string()])
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("person"))
}

/// The org's people, oldest first, filtered by phone or text.
pub async fn list(
    state: &State,
    org_id: &str,
    filters: PeopleFilters,
    page: PageRequest,
) -> Result<Page<PersonView>, ApiError> {
    let phone = filters
        .phone
        .as_deref()
        .map(|p| phone_param(p, "phone"))
        .transpose()?;
    let text = filters
        .q
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    let o = org_id.to_string();
    let fetch = page.fetch();
    let after = page.after.clone();
    let ids = state
        .store
        .run(move |conn| {
            queries::list_people(
                conn,
                &o,
                phone.as_deref(),
                text.as_deref(),
                after.as_deref(),
                fetch,
            )
        })
        .await?;
    let page = Page::from_rows(ids, page.limit, |s| s.as_str());
    Ok(Page {
        data: views(state, org_id.to_string(), page.data).await?,
        next_cursor: page.next_cursor,
    })
}

/// Relinks every live contact of each org (all when `org` is `None`, else the
/// org of that name) by the rules in force: `max_contacts_per_identifier`
/// changed, or a repair. The people's events say what moved.
pub async fn relink(store: &Store, org: Option<&str>) -> Result<Vec<(Org, LinkCounts)>, ApiError> {
    let wanted = org.map(str::to_string);
    let orgs = store
        .run(move |conn| match &wanted {
            Some(name) => Ok(orgs::find_org_by_name(conn, name)?.into_iter().collect()),
            None => orgs::all_orgs(conn),
        })
        .await?;
    if let (Some(name), true) = (org, orgs.is_empty()) {
        return Err(ApiError::not_found("org").with_details(serde_json::json!({"org": name})));
    }
    let mut out = Vec::with_capacity(orgs.len());
    for o in orgs {
        let counts = change::apply(store, Scope::new(&o.id, Cause::relink()), |c| {
            c.relink_org()
        })
        .await?;
        out.push((o, counts));
    }
    Ok(out)
}

/// An identifier too many live contacts share to link them (see
/// `max_contacts_per_identifier`).
#[derive(Serialize, ToSchema)]
pub struct OversharedIdentifier {
    /// The kind and the value's letters and digits: its place in the list.
    #[schema(example = "phone_442079460000")]
    pub id: String,
    /// `phone` (E.164) or `lid` (WhatsApp LID).
    #[schema(example = "phone")]
    pub kind: String,
    #[schema(example = "+442079460000")]
    pub value: String,
    /// How many of the org's live contacts hold it.
    #[schema(example = 62)]
    pub count: i64,
}

/// The org's identifiers shared by more live contacts than the limit, which
/// link none of them; in `id` order.
pub async fn overshared(
    state: &State,
    org_id: &str,
    page: PageRequest,
) -> Result<Page<OversharedIdentifier>, ApiError> {
    let (org, max) = (
        org_id.to_string(),
        i64::from(state.settings.max_contacts_per_identifier),
    );
    let rows = state
        .store
        .run(move |conn| queries::overshared(conn, &org, max))
        .await?;
    let mut all: Vec<OversharedIdentifier> = rows
        .into_iter()
        .map(|(kind, value, count)| OversharedIdentifier {
            id: format!(
                "{kind}_{}",
                value
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect::<String>()
            ),
            kind,
            value,
            count,
        })
        .collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let rows: Vec<OversharedIdentifier> = all
        .into_iter()
        .filter(|o| {
            page.after
                .as_ref()
                .is_none_or(|after| o.id.as_str() > after.as_str())
        })
        .take(page.limit + 1)
        .collect();
    Ok(Page::from_rows(rows, page.limit, |o| &o.id))
}
