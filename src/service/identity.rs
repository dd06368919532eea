//! Identity control: merge and split people by hand, undo any of it, block
//! identifier values, and a person's history. The operations themselves are
//! steps of the unit of work (`change::identity`); here are the requests, the
//! answers and the dry runs.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::change::identity::{Actor, Before};
use crate::change::{self, Scope};
use crate::error::{ApiError, FieldErrors};
use crate::page::{Page, PageRequest};
use crate::service::contacts::phone_param;
use crate::service::people::{view_on, PersonView};
use crate::state::State;
use crate::store::events::Cause;
use crate::store::identity::{self as queries, BlockedRow, OperationRow};
use crate::store::people as people_queries;

/// Makes one person of two.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The person merged into the one of the path (its id then answers 404
    /// with `details.merged_into`).
    #[schema(
        example = "per_01jd2x9v8c0000000000000000",
        min_length = 1,
        max_length = 64
    )]
    #[validate(length(min = 1, max = 64, message = "must be a person id (`per_…`)"))]
    pub person_id: String,
    /// Why: kept with the operation, shown in the person's history.
    #[schema(min_length = 1, max_length = 500)]
    #[validate(length(min = 1, max = 500, message = "must be 1 to 500 characters"))]
    pub reason: String,
    /// Answer the person as it would be, and change nothing (default false).
    #[serde(default)]
    pub dry_run: bool,
}

/// Moves contacts of a person into a new person, kept apart from the rest.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitRequest {
    /// Live contacts of the person (`ctc_…`), not all of them.
    #[schema(min_items = 1, max_items = 1000)]
    #[validate(length(min = 1, max = 1000, message = "must name 1 to 1000 contacts"))]
    pub contact_ids: Vec<String>,
    #[schema(min_length = 1, max_length = 500)]
    #[validate(length(min = 1, max = 500, message = "must be 1 to 500 characters"))]
    pub reason: String,
    /// Answer the new person as it would be, and change nothing (default false).
    #[serde(default)]
    pub dry_run: bool,
}

/// What an undo is asked with.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UndoRequest {
    /// Why (default: none given).
    #[schema(max_length = 500)]
    #[validate(length(max = 500, message = "must be at most 500 characters"))]
    pub reason: Option<String>,
}

/// The kinds of identifier a value may be blocked of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IdentifierKind {
    Phone,
    Email,
    Lid,
}

impl IdentifierKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Phone => "phone",
            Self::Email => "email",
            Self::Lid => "lid",
        }
    }
}

/// An identifier value that links no contacts.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    pub kind: IdentifierKind,
    /// Any written form: a phone with its country code (`+44 20 7946 0000`,
    /// `442079460000@c.us`), a LID (`205227043110953@lid`), an email.
    #[schema(example = "+44 20 7946 0000", min_length = 1, max_length = 320)]
    #[validate(length(min = 1, max = 320, message = "must be 1 to 320 characters"))]
    pub value: String,
    #[schema(min_length = 1, max_length = 500)]
    #[validate(length(min = 1, max = 500, message = "must be 1 to 500 characters"))]
    pub reason: String,
}

/// A blocked identifier value.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockedValueView {
    #[schema(example = "blk_01jd2x9v8c0000000000000000")]
    pub id: String,
    pub kind: String,
    /// Normalised: E.164, a LID, a lowercased email.
    #[schema(example = "+442079460000")]
    pub value: String,
    pub reason: String,
    pub created_at: String,
    /// The operation that blocked it (its undo lifts the block).
    pub operation_id: String,
}

impl From<BlockedRow> for BlockedValueView {
    fn from(row: BlockedRow) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            value: row.value,
            reason: row.reason,
            created_at: crate::ids::rfc3339(row.created_at),
            operation_id: row.operation_id,
        }
    }
}

/// An identity operation made by hand.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityOperationView {
    #[schema(example = "idop_01jd2x9v8c0000000000000000")]
    pub id: String,
    /// `merge`, `split`, `block`, `unblock` or `undo`.
    pub kind: String,
    /// merge: the surviving person; split: the person split; block and
    /// unblock: the blocked value; undo: the operation undone.
    pub subject_id: String,
    /// merge: the person absorbed; split: the new person.
    pub other_id: Option<String>,
    pub reason: String,
    /// The API key that made it.
    pub api_key_id: Option<String>,
    /// The request that made it (its `x-request-id`).
    pub request_id: Option<String>,
    pub created_at: String,
    /// The undo that reverted it, if one did.
    pub undone_by: Option<String>,
    /// The contacts it concerned, with the person each had before it.
    pub contacts: Vec<ContactPerson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactPerson {
    pub contact_id: String,
    pub person_id: String,
}

fn operation_view(row: OperationRow) -> Result<IdentityOperationView, ApiError> {
    let before: Before = serde_json::from_str(&row.before).map_err(ApiError::internal)?;
    Ok(IdentityOperationView {
        id: row.id,
        kind: row.kind,
        subject_id: row.subject_id,
        other_id: row.other_id,
        reason: row.reason,
        api_key_id: row.api_key_id,
        request_id: row.request_id,
        created_at: crate::ids::rfc3339(row.created_at),
        undone_by: row.undone_by,
        contacts: before
            .contacts
            .into_iter()
            .map(|(contact_id, person_id)| ContactPerson {
                contact_id,
                person_id,
            })
            .collect(),
    })
}

fn actor(reason: &str, key_id: &str) -> Actor {
    Actor {
        reason: reason.to_string(),
        api_key_id: Some(key_id.to_string()),
        request_id: crate::telemetry::request_id(),
    }
}

/// A unit of work of a manual operation (its cause is set per operation).
fn scope(org_id: &str, dry_run: bool) -> Scope {
    Scope::new(org_id, Cause::api_write(crate::telemetry::request_id())).dry_run(dry_run)
}

/// Merges `body.person_id` into `survivor`: the survivor's view after it.
pub async fn merge(
    state: &State,
    org_id: &str,
    key_id: &str,
    survivor: &str,
    body: MergeRequest,
) -> Result<PersonView, ApiError> {
    FieldErrors::of(&body).into_result()?;
    let who = actor(&body.reason, key_id);
    let (org, kept, absorbed) = (org_id.to_string(), survivor.to_string(), body.person_id);
    let precedence = state.settings.person_name_precedence.clone();
    let dry_run = body.dry_run;
    let view = change::apply(&state.store, scope(org_id, dry_run), move |c| {
        let op = c.merge(&kept, &absorbed, &who)?;
        let mut view = view_on(c.conn(), &org, &kept, &precedence)?;
        view.operation_id = (!dry_run).then_some(op.id);
        Ok(view)
    })
    .await?;
    Ok(view)
}

/// Splits `body.contact_ids` out of `person`: the new person's view.
pub async fn split(
    state: &State,
    org_id: &str,
    key_id: &str,
    person: &str,
    body: SplitRequest,
) -> Result<PersonView, ApiError> {
    FieldErrors::of(&body).into_result()?;
    let who = actor(&body.reason, key_id);
    let (org, person, contacts) = (org_id.to_string(), person.to_string(), body.contact_ids);
    let precedence = state.settings.person_name_precedence.clone();
    let dry_run = body.dry_run;
    let view = change::apply(&state.store, scope(org_id, dry_run), move |c| {
        let (op, new_person) = c.split(&person, &contacts, &who)?;
        let mut view = view_on(c.conn(), &org, &new_person, &precedence)?;
        view.operation_id = (!dry_run).then_some(op.id);
        Ok(view)
    })
    .await?;
    Ok(view)
}

/// Undoes an operation: the undo's own operation.
pub async fn undo(
    state: &State,
    org_id: &str,
    key_id: &str,
    id: &str,
    body: UndoRequest,
) -> Result<IdentityOperationView, ApiError> {
    FieldErrors::of(&body).into_result()?;
    let who = actor(body.reason.as_deref().unwrap_or(""), key_id);
    let id = id.to_string();
    let row = change::apply(&state.store, scope(org_id, false), move |c| {
        c.undo(&id, &who)
    })
    .await?;
    operation_view(row)
}

/// A value in the form linking compares (E.164, a LID, a lowercased email),
/// or what is wrong with it.
pub fn normalise(kind: IdentifierKind, value: &str) -> Result<String, &'static str> {
    let value = value.trim();
    match kind {
        IdentifierKind::Phone => phone_param(value, "value")
            .ok()
            .filter(|v| v.starts_with('+'))
            .ok_or("is not a phone number with a country code (such as +44 20 7946 0000)"),
        IdentifierKind::Lid => {
            let digits = value.strip_suffix("@lid").unwrap_or(value);
            if (5..=24).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
                Ok(format!("{digits}@lid"))
            } else {
                Err("is not a WhatsApp LID (digits, optionally followed by `@lid`)")
            }
        }
        IdentifierKind::Email => {
            let lower = value.to_lowercase();
            match lower.split_once('@') {
                Some((local, domain))
                    if !local.is_empty() && domain.contains('.') && !lower.contains(' ') =>
                {
                    Ok(lower)
                }
                _ => Err("is not an email address"),
            }
        }
    }
}

/// Blocks a value: it links no contacts from now on.
pub async fn block(
    state: &State,
    org_id: &str,
    key_id: &str,
    body: BlockRequest,
) -> Result<BlockedValueView, ApiError> {
    let mut errors = FieldErrors::of(&body);
    let value = normalise(body.kind, &body.value);
    if let (false, Err(message)) = (errors.has("value"), &value) {
        errors.add("value", *message);
    }
    errors.into_result()?;
    let value = value.unwrap_or_default();
    let who = actor(&body.reason, key_id);
    let kind = body.kind.as_str();
    let row = change::apply(&state.store, scope(org_id, false), move |c| {
        c.block(kind, &value, &who)
    })
    .await?;
    Ok(row.into())
}

/// Lifts a block: the value links again.
pub async fn unblock(state: &State, org_id: &str, key_id: &str, id: &str) -> Result<(), ApiError> {
    let who = actor("", key_id);
    let id = id.to_string();
    change::apply(&state.store, scope(org_id, false), move |c| {
        c.unblock(&id, &who).map(|_| ())
    })
    .await?;
    Ok(())
}

/// The org's blocked values, in id order.
pub async fn blocked(
    state: &State,
    org_id: &str,
    page: PageRequest,
) -> Result<Page<BlockedValueView>, ApiError> {
    let (org, after, fetch) = (org_id.to_string(), page.after.clone(), page.fetch());
    let rows = state
        .store
        .run(move |conn| queries::list_blocked(conn, &org, after.as_deref(), fetch))
        .await?;
    Ok(Page::from_rows(rows, page.limit, |r| &r.id).map(BlockedValueView::from))
}

/// One entry of a person's history: an identifier that links its contacts
/// now (`kind: link`), or an operation made by hand on them, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// `link_<kind>_<value's letters and digits>` for a link, the operation's
    /// id (`idop_…`) for an operation.
    pub id: String,
    /// `link`, `merge`, `split`, `block`, `unblock` or `undo`.
    pub kind: String,
    /// For a link: the identifier shared.
    pub identifier: Option<Identifier>,
    /// For a link: the person's contacts holding it.
    pub contact_ids: Vec<String>,
    /// For an operation: the operation.
    pub operation: Option<IdentityOperationView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Identifier {
    /// `phone` or `lid`.
    pub kind: String,
    pub value: String,
}

/// The identity history of a person: first the identifiers that link its
/// contacts now, then the operations made by hand on its contacts (or naming
/// it), newest first.
pub async fn history(
    state: &State,
    org_id: &str,
    person: &str,
    page: PageRequest,
) -> Result<Page<HistoryEntry>, ApiError> {
    let (org, id) = (org_id.to_string(), person.to_string());
    let limit = page.limit;
    let after = page.after.clone();
    let max = state.settings.max_contacts_per_identifier as usize;
    let (links, ops) = state
        .store
        .run(move |conn| {
            let exists = people_queries::person_exists(conn, &org, &id)?;
            let merged = (!exists)
                .then(|| queries::merged_into(conn, &org, &id))
                .transpose()?
                .flatten();
            if !exists && merged.is_none() {
                return Err(crate::store::StoreError::refused(404, "person not found"));
            }
            let contacts: Vec<String> = people_queries::members(conn, std::slice::from_ref(&id))?
                .into_iter()
                .map(|(c, _)| c)
                .collect();
            let refs: Vec<&str> = contacts.iter().map(String::as_str).collect();
            let keys =
                people_queries::keys_of_contacts(conn, &refs, &crate::change::link::LINK_KINDS)?;
            let in_ops = after.as_deref().is_some_and(|a| a.starts_with("idop_"));
            let ops = queries::operations_of(
                conn,
                &org,
                &contacts,
                &id,
                if in_ops { after.as_deref() } else { None },
                (limit + 1) as i64,
            )?;
            Ok((keys, ops))
        })
        .await?;
    let mut by_key: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
    for (contact, kind, value) in links {
        by_key.entry((kind, value)).or_default().push(contact);
    }
    let mut entries: Vec<HistoryEntry> = Vec::new();
    let in_ops = page
        .after
        .as_deref()
        .is_some_and(|a| a.starts_with("idop_"));
    if !in_ops {
        let mut linking: Vec<HistoryEntry> = by_key
            .into_iter()
            .filter(|(_, holders)| holders.len() >= 2 && holders.len() <= max)
            .map(|((kind, value), contact_ids)| HistoryEntry {
                id: format!(
                    "link_{kind}_{}",
                    value
                        .chars()
                        .filter(char::is_ascii_alphanumeric)
                        .collect::<String>()
                ),
                kind: "link".into(),
                identifier: Some(Identifier { kind, value }),
                contact_ids,
                operation: None,
            })
            .filter(|e| {
                page.after
                    .as_ref()
                    .is_none_or(|a| e.id.as_str() > a.as_str())
            })
            .collect();
        linking.sort_by(|a, b| a.id.cmp(&b.id));
        entries.extend(linking);
    }
    for op in ops {
        if entries.len() > limit {
            break;
        }
        let view = operation_view(op)?;
        entries.push(HistoryEntry {
            id: view.id.clone(),
            kind: view.kind.clone(),
            identifier: None,
            contact_ids: view.contacts.iter().map(|c| c.contact_id.clone()).collect(),
            operation: Some(view),
        });
    }
    entries.truncate(limit + 1);
    Ok(Page::from_rows(entries, limit, |e| &e.id))
}

/// One operation.
pub async fn operation(
    state: &State,
    org_id: &str,
    id: &str,
) -> Result<IdentityOperationView, ApiError> {
    let (org, id) = (org_id.to_string(), id.to_string());
    let row = state
        .store
        .run(move |conn| queries::find_operation(conn, &org, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("identity operation"))?;
    operation_view(row)
}

/// Erase a person.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// Why (a data subject's request, say): kept with the suppression.
    #[schema(min_length = 1, max_length = 500)]
    #[validate(length(min = 1, max = 500, message = "must be 1 to 500 characters"))]
    pub reason: String,
    /// Also delete the contacts at the providers that can (default false).
    #[serde(default)]
    pub at_providers: bool,
}

/// What an erasure did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureView {
    pub person_id: String,
    /// What is left of the person: keyed hashes of its identifiers, which keep
    /// it from coming back (`DELETE /v1/admin/suppressions/{id}` lifts it).
    pub suppression_id: String,
    pub contacts: Vec<ErasedContactView>,
}

/// A contact an erasure removed from the store, and what happened at its provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasedContactView {
    pub contact_id: String,
    pub connection_id: String,
    pub provider: String,
    /// `not_asked` (`at_providers` was false), `deleted`, `already_gone`,
    /// `unsupported` (the provider cannot delete contacts) or `failed` (see `error`).
    pub at_provider: String,
    pub error: Option<String>,
}

/// Erases a person from the store (and, with `at_providers`, at the providers
/// that can delete): its contacts, raw payloads, search text and keys go,
/// its identifiers are suppressed.
pub async fn erase(
    state: &State,
    org_id: &str,
    key_id: &str,
    person: &str,
    body: EraseRequest,
) -> Result<ErasureView, ApiError> {
    use crate::error::ErrorCode;
    FieldErrors::of(&body).into_result()?;
    let (org, id) = (org_id.to_string(), person.to_string());
    let contacts: Vec<String> = state
        .store
        .run(move |conn| {
            queries::require_person(conn, &org, &id)?;
            Ok(people_queries::members(conn, std::slice::from_ref(&id))?
                .into_iter()
                .map(|(c, _)| c)
                .collect())
        })
        .await?;
    let mut outcomes: std::collections::HashMap<String, (&'static str, Option<String>)> =
        Default::default();
    if body.at_providers {
        for contact in &contacts {
            let outcome = match crate::service::contact_writes::delete(state, org_id, contact).await
            {
                Ok(_) => ("deleted", None),
                Err(e) if e.code == ErrorCode::UnsupportedByProvider => ("unsupported", None),
                Err(e) if e.code == ErrorCode::NotFound => ("already_gone", None),
                Err(e) => ("failed", Some(e.message.clone())),
            };
            outcomes.insert(contact.clone(), outcome);
        }
    }
    let who = actor(&body.reason, key_id);
    let (id, also) = (person.to_string(), contacts);
    let erased = change::apply(&state.store, scope(org_id, false), move |c| {
        c.erase(&id, &also, &who)
    })
    .await?;
    for c in &erased.contacts {
        state
            .changed(crate::notices::Notice::Contact(
                c.connection_id.clone(),
                c.remote_id.clone(),
            ))
            .await;
    }
    Ok(ErasureView {
        person_id: person.to_string(),
        suppression_id: erased.suppression_id,
        contacts: erased
            .contacts
            .into_iter()
            .map(|c| {
                let (at_provider, error) = outcomes.remove(&c.id).unwrap_or(("not_asked", None));
                ErasedContactView {
                    contact_id: c.id,
                    connection_id: c.connection_id,
                    provider: c.provider,
                    at_provider: at_provider.to_string(),
                    error,
                }
            })
            .collect(),
    })
}

/// A suppression: what an erasure left of a person. The values are never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionView {
    #[schema(example = "sup_01jd2x9v8c0000000000000000")]
    pub id: String,
    /// The kinds of identifier it holds (`phone`, `lid`, `email`).
    pub kinds: Vec<String>,
    pub reason: String,
    pub created_at: String,
}

/// The org's suppressions, in id order.
pub async fn suppressions(
    state: &State,
    org_id: &str,
    page: PageRequest,
) -> Result<Page<SuppressionView>, ApiError> {
    let (org, after, fetch) = (org_id.to_string(), page.after.clone(), page.fetch());
    let rows = state
        .store
        .run(move |conn| crate::store::suppressions::list(conn, &org, after.as_deref(), fetch))
        .await?;
    Ok(
        Page::from_rows(rows, page.limit, |r| &r.id).map(|r| SuppressionView {
            id: r.id,
            kinds: r
                .kinds
                .split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect(),
            reason: r.reason,
            created_at: crate::ids::rfc3339(r.created_at),
        }),
    )
}

/// Lifts a suppression: the next sync brings the person's contacts back, as new.
pub async fn lift_suppression(state: &State, org_id: &str, id: &str) -> Result<(), ApiError> {
    let (org, id) = (org_id.to_string(), id.to_string());
    state
        .store
        .write(move |conn| {
            crate::store::in_transaction(conn, |conn| {
                if crate::store::suppressions::find(conn, &org, &id)?.is_none() {
                    return Err(crate::store::StoreError::refused(
                        404,
                        "suppression not found",
                    ));
                }
                crate::store::suppressions::delete(conn, &id)
            })
        })
        .await?;
    Ok(())
}
