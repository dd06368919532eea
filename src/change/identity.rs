//! Identity control: the manual operations on people, each a step of a
//! [`ContactChange`]. A merge and a split hold their contacts as bonds
//! (`store::identity`) that linking applies before any identifier, so no sync,
//! live read or relink undoes them; a blocked value links nobody. Every
//! operation records what it changed, so that its undo puts back exactly the
//! grouping and the person ids there were before it.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use super::link::{self, PersonChanges};
use super::ContactChange;
use crate::ids;
use crate::store::event_type::EventType;
use crate::store::events::{Cause, NewEvent};
use crate::store::identity::{self as queries, BlockedRow, OperationRow};
use crate::store::people;
use crate::store::StoreError;

/// Who asks for an operation, and why.
#[derive(Debug, Clone)]
pub struct Actor {
    pub reason: String,
    pub api_key_id: Option<String>,
    pub request_id: Option<String>,
}

/// What an operation changed, as its undo needs it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Before {
    /// Each contact it concerned and the person it belonged to.
    pub contacts: Vec<(String, String)>,
    /// When each of those people was created (a person put back keeps it).
    pub people: Vec<(String, chrono::NaiveDateTime)>,
    /// A block's (or a lifted block's) row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<BlockedValue>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockedValue {
    pub id: String,
    pub kind: String,
    pub value: String,
    pub reason: String,
    pub created_at: chrono::NaiveDateTime,
    pub operation_id: String,
}

/// The kinds of operation.
pub const MERGE: &str = "merge";
pub const SPLIT: &str = "split";
pub const BLOCK: &str = "block";
pub const UNBLOCK: &str = "unblock";
pub const UNDO: &str = "undo";

fn not_found(what: &str) -> StoreError {
    StoreError::Refused {
        status: 404,
        message: format!("{what} not found"),
        details: serde_json::json!({}),
    }
}

impl ContactChange<'_> {
    /// 404 unless the org has this person; one merged away by hand answers
    /// 404 with `details.merged_into`, the person it lives on in.
    pub fn existing_person(&mut self, id: &str) -> Result<(), StoreError> {
        let org = self.org_id();
        queries::require_person(self.conn(), org, id)
    }

    /// The live contacts of these people, and when the people were created.
    fn before_of(&mut self, persons: &[String]) -> Result<Before, StoreError> {
        let contacts = people::members(self.conn(), persons)?;
        let mut involved: Vec<String> = contacts.iter().map(|(_, p)| p.clone()).collect();
        involved.extend(persons.iter().cloned());
        involved.sort();
        involved.dedup();
        Ok(Before {
            contacts,
            people: queries::people_created(self.conn(), &involved)?,
            blocked: None,
        })
    }

    /// Records an operation made now by `actor`.
    fn record(
        &mut self,
        kind: &str,
        subject: &str,
        other: Option<&str>,
        actor: &Actor,
        before: &Before,
    ) -> Result<OperationRow, StoreError> {
        let row = OperationRow {
            id: ids::new_id(ids::IDENTITY_OPERATION),
            org_id: self.org_id().to_string(),
            kind: kind.to_string(),
            subject_id: subject.to_string(),
            other_id: other.map(str::to_string),
            reason: actor.reason.clone(),
            api_key_id: actor.api_key_id.clone(),
            request_id: actor.request_id.clone(),
            created_at: ids::now(),
            undone_by: None,
            before: serde_json::to_string(before)
                .map_err(|e| StoreError::Corrupt(format!("an operation's state: {e}")))?,
        };
        let contacts: Vec<String> = before.contacts.iter().map(|(c, _)| c.clone()).collect();
        queries::insert_operation(self.conn(), &row, &contacts)?;
        Ok(row)
    }

    /// Relinks the contacts an operation concerned (its own events come from
    /// [`Self::settle_manual`]), and returns their people after it.
    fn relink_quietly(&mut self, contacts: &[String]) -> Result<(), StoreError> {
        let org = self.org_id();
        let rules = self.rules;
        link::link_contacts(self.conn(), org, contacts, rules)?;
        self.wrote = true;
        Ok(())
    }

    /// The people's events of an operation: what happened to the people of
    /// `before`'s contacts, with the operation as their cause.
    fn settle_manual(&mut self, before: &Before, cause: &Cause) -> Result<(), StoreError> {
        let ids: Vec<&String> = before.contacts.iter().map(|(c, _)| c).collect();
        let org = self.org_id();
        let now: BTreeMap<String, Option<String>> =
            people::find_link_state(self.conn(), org, &ids)?
                .into_iter()
                .map(|(c, p, deleted)| (c, if deleted { None } else { p }))
                .collect();
        let existing: HashSet<&str> = before.people.iter().map(|(p, _)| p.as_str()).collect();
        let mut went_to: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut after: BTreeSet<&str> = BTreeSet::new();
        for (contact, was) in &before.contacts {
            let Some(Some(is)) = now.get(contact) else {
                continue;
            };
            went_to.entry(was).or_default().insert(is);
            after.insert(is);
        }
        let ulid = |p: &str| link::ulid_of(p);
        let mut changes = PersonChanges::default();
        for p in &after {
            if !existing.contains(p) {
                changes.created.push(ulid(p)?);
            }
        }
        for q in &after {
            let absorbed: Vec<u128> = went_to
                .iter()
                .filter(|(p, to)| *p != q && !after.contains(*p) && to.len() == 1 && to.contains(q))
                .map(|(p, _)| ulid(p))
                .collect::<Result<_, _>>()?;
            if !absorbed.is_empty() {
                changes.merged.push((ulid(q)?, absorbed));
            }
        }
        for (p, to) in &went_to {
            if to.len() > 1 {
                changes.split.push((
                    ulid(p)?,
                    to.iter().map(|t| ulid(t)).collect::<Result<_, _>>()?,
                ));
            }
        }
        let gone: Vec<String> = went_to
            .keys()
            .filter(|p| !after.contains(*p))
            .map(|p| p.to_string())
            .collect();
        changes.removed = people::delete_empty_people(self.conn(), org, Some(&gone))?;
        self.events.extend(changes.events(cause));
        Ok(())
    }

    /// Makes one person of `survivor` and `absorbed`: the contacts of both are
    /// held together, and `absorbed`'s id answers 404 naming the survivor.
    pub fn merge(
        &mut self,
        survivor: &str,
        absorbed: &str,
        actor: &Actor,
    ) -> Result<OperationRow, StoreError> {
        if survivor == absorbed {
            return Err(StoreError::Refused {
                status: 409,
                message: "a person cannot be merged with itself".into(),
                details: serde_json::json!({ "person_id": absorbed }),
            });
        }
        self.existing_person(survivor)?;
        self.existing_person(absorbed)?;
        let before = self.before_of(&[survivor.to_string(), absorbed.to_string()])?;
        let op = self.record(MERGE, survivor, Some(absorbed), actor, &before)?;
        let moves: Vec<(String, String)> = before
            .contacts
            .iter()
            .map(|(c, _)| (c.clone(), survivor.to_string()))
            .collect();
        people::set_people(self.conn(), &moves)?;
        let bonds: Vec<(String, i32)> = before
            .contacts
            .iter()
            .map(|(c, _)| (c.clone(), 0))
            .collect();
        let org = self.org_id();
        queries::insert_bonds(self.conn(), org, &op.id, &bonds)?;
        queries::insert_merged(self.conn(), org, absorbed, survivor, &op.id)?;
        self.finish_operation(&op, &before)?;
        Ok(op)
    }

    /// Moves `contacts` (live contacts of `person`, not all of them) into a new
    /// person, and keeps them apart from the rest. Returns the operation and
    /// the new person's id.
    pub fn split(
        &mut self,
        person: &str,
        contacts: &[String],
        actor: &Actor,
    ) -> Result<(OperationRow, String), StoreError> {
        self.existing_person(person)?;
        let before = self.before_of(&[person.to_string()])?;
        let own: HashSet<&str> = before.contacts.iter().map(|(c, _)| c.as_str()).collect();
        let named: BTreeSet<&str> = contacts.iter().map(String::as_str).collect();
        let strangers: Vec<&str> = named.iter().copied().filter(|c| !own.contains(c)).collect();
        // What the person holds now decides: a conflict with its state (409).
        let refuse = |message: String, details: serde_json::Value| StoreError::Refused {
            status: 409,
            message,
            details,
        };
        if !strangers.is_empty() {
            return Err(refuse(
                format!(
                    "not live contacts of person {person}: {}",
                    strangers.join(", ")
                ),
                serde_json::json!({ "contact_ids": strangers }),
            ));
        }
        if named.len() == own.len() {
            return Err(refuse(
                "a split must leave at least one contact with the person".into(),
                serde_json::json!({ "contact_ids": named.iter().collect::<Vec<_>>() }),
            ));
        }
        let new_person = ids::new_id(ids::PERSON);
        let op = self.record(SPLIT, person, Some(&new_person), actor, &before)?;
        let org = self.org_id();
        people::insert_people(
            self.conn(),
            org,
            std::slice::from_ref(&new_person),
            ids::now(),
        )?;
        let moves: Vec<(String, String)> = named
            .iter()
            .map(|c| (c.to_string(), new_person.clone()))
            .collect();
        people::set_people(self.conn(), &moves)?;
        let bonds: Vec<(String, i32)> = before
            .contacts
            .iter()
            .map(|(c, _)| (c.clone(), if named.contains(c.as_str()) { 1 } else { 2 }))
            .collect();
        queries::insert_bonds(self.conn(), org, &op.id, &bonds)?;
        self.finish_operation(&op, &before)?;
        Ok((op, new_person))
    }

    /// Blocks an identifier value (normalised already): it links nobody from
    /// now on, and the people it linked come apart at once.
    pub fn block(
        &mut self,
        kind: &str,
        value: &str,
        actor: &Actor,
    ) -> Result<BlockedRow, StoreError> {
        let org = self.org_id();
        if let Some(row) = queries::find_blocked_value(self.conn(), org, kind, value)? {
            return Err(StoreError::Refused {
                status: 409,
                message: format!("{kind} `{value}` is blocked already, as {}", row.id),
                details: serde_json::json!({"blocked_value_id": row.id}),
            });
        }
        let id = ids::new_id(ids::BLOCKED_VALUE);
        let mut before = self.holders_before(kind, value)?;
        let op = self.record(BLOCK, &id, None, actor, &before)?;
        let row = BlockedRow {
            id,
            org_id: org.to_string(),
            kind: kind.to_string(),
            value: value.to_string(),
            reason: actor.reason.clone(),
            operation_id: op.id.clone(),
            created_at: op.created_at,
        };
        queries::insert_blocked(self.conn(), &row)?;
        before.blocked = Some(blocked_value(&row));
        self.finish_operation(&op, &before)?;
        Ok(row)
    }

    /// Lifts a block: the value links again, at once.
    pub fn unblock(&mut self, id: &str, actor: &Actor) -> Result<OperationRow, StoreError> {
        let org = self.org_id();
        let row = queries::find_blocked(self.conn(), org, id)?
            .ok_or_else(|| not_found("blocked value"))?;
        let mut before = self.holders_before(&row.kind, &row.value)?;
        before.blocked = Some(blocked_value(&row));
        let op = self.record(UNBLOCK, id, None, actor, &before)?;
        queries::delete_blocked(self.conn(), id)?;
        self.finish_operation(&op, &before)?;
        Ok(op)
    }

    /// The people of the org's live contacts holding a value, as `Before`.
    fn holders_before(&mut self, kind: &str, value: &str) -> Result<Before, StoreError> {
        let org = self.org_id();
        let holders = people::contacts_with_keys(self.conn(), kind, &[value])?;
        let holders: Vec<&String> = holders.iter().collect();
        let persons: Vec<String> = people::find_link_state(self.conn(), org, &holders)?
            .into_iter()
            .filter(|(_, _, deleted)| !deleted)
            .filter_map(|(_, p, _)| p)
            .collect();
        self.before_of(&persons)
    }

    /// After an operation's writes: relinks its contacts and records the
    /// people's events, caused by it.
    fn finish_operation(&mut self, op: &OperationRow, before: &Before) -> Result<(), StoreError> {
        let contacts: Vec<String> = before.contacts.iter().map(|(c, _)| c.clone()).collect();
        self.relink_quietly(&contacts)?;
        let cause = Cause::manual(&op.id, op.request_id.clone());
        self.settle_manual(before, &cause)
    }

    /// Undoes an operation: puts back each of its contacts' people as they
    /// were (people merged or split away come back under their ids), lifts its
    /// bonds (or its block), relinks, and records the undo. Refused with 409
    /// when a later operation in force concerns the same contacts.
    pub fn undo(&mut self, id: &str, actor: &Actor) -> Result<OperationRow, StoreError> {
        let org = self.org_id();
        let op = queries::find_operation(self.conn(), org, id)?
            .ok_or_else(|| not_found("identity operation"))?;
        if let Some(by) = &op.undone_by {
            return Err(StoreError::Refused {
                status: 409,
                message: format!("{id} was undone already, by {by}"),
                details: serde_json::json!({"undone_by": by}),
            });
        }
        if op.kind == UNDO {
            return Err(StoreError::Refused {
                status: 422,
                message: "an undo cannot be undone: make the operation again".into(),
                details: serde_json::json!({}),
            });
        }
        let recorded: Before = serde_json::from_str(&op.before)
            .map_err(|e| StoreError::Corrupt(format!("operation {id}: {e}")))?;
        let contacts: Vec<String> = recorded.contacts.iter().map(|(c, _)| c.clone()).collect();
        let later =
            queries::later_operations_on(self.conn(), org, &op.id, &op.subject_id, &contacts)?;
        if !later.is_empty() {
            return Err(StoreError::Refused {
                status: 409,
                message: format!(
                    "later operations build on {id}: undo them first ({})",
                    later.join(", ")
                ),
                details: serde_json::json!({"operations": later}),
            });
        }
        // What stands now, for the undo's own undo-free record and its events.
        let ids_now: Vec<&String> = contacts.iter().collect();
        let mut persons: Vec<String> = people::find_link_state(self.conn(), org, &ids_now)?
            .into_iter()
            .filter_map(|(_, p, _)| p)
            .collect();
        persons.sort();
        persons.dedup();
        let now = self.before_of(&persons)?;
        let undo = self.record(UNDO, &op.id, None, actor, &now)?;
        queries::mark_undone(self.conn(), &op.id, &undo.id)?;
        match op.kind.as_str() {
            MERGE => {
                queries::delete_bonds(self.conn(), &op.id)?;
                queries::delete_merged(self.conn(), &op.id)?;
            }
            SPLIT => queries::delete_bonds(self.conn(), &op.id)?,
            BLOCK => {
                if let Some(b) = &recorded.blocked {
                    queries::delete_blocked(self.conn(), &b.id)?;
                }
            }
            UNBLOCK => {
                if let Some(b) = &recorded.blocked {
                    queries::insert_blocked(
                        self.conn(),
                        &BlockedRow {
                            id: b.id.clone(),
                            org_id: org.to_string(),
                            kind: b.kind.clone(),
                            value: b.value.clone(),
                            reason: b.reason.clone(),
                            operation_id: b.operation_id.clone(),
                            created_at: b.created_at,
                        },
                    )?;
                }
            }
            other => {
                return Err(StoreError::Corrupt(format!(
                    "operation {id} of kind {other}"
                )))
            }
        }
        // Each contact back with its person of before (those still live), the
        // people put back under their ids and creation times.
        let stamp = ids::now();
        for (person, created) in &recorded.people {
            if recorded.contacts.iter().any(|(_, p)| p == person) {
                queries::restore_person(self.conn(), org, person, *created, stamp)?;
            }
        }
        let live: HashSet<String> = people::find_link_state(self.conn(), org, &ids_now)?
            .into_iter()
            .filter(|(_, _, deleted)| !deleted)
            .map(|(c, _, _)| c)
            .collect();
        let moves: Vec<(String, String)> = recorded
            .contacts
            .iter()
            .filter(|(c, _)| live.contains(c))
            .cloned()
            .collect();
        people::set_people(self.conn(), &moves)?;
        let cause = Cause::manual(&undo.id, undo.request_id.clone());
        self.relink_quietly(&contacts)?;
        self.settle_manual(&now, &cause)?;
        self.events.push(undone_event(&undo, &op, &cause));
        Ok(undo)
    }
}

fn blocked_value(row: &BlockedRow) -> BlockedValue {
    BlockedValue {
        id: row.id.clone(),
        kind: row.kind.clone(),
        value: row.value.clone(),
        reason: row.reason.clone(),
        created_at: row.created_at,
        operation_id: row.operation_id.clone(),
    }
}

/// `identity_operation.undone`: the undo, the operation it undid and its kind.
fn undone_event(undo: &OperationRow, undone: &OperationRow, cause: &Cause) -> NewEvent {
    NewEvent {
        event_type: EventType::IdentityOperationUndone,
        connection_id: None,
        data: serde_json::json!({
            "operation_id": undo.id,
            "undone_operation_id": undone.id,
            "undone_kind": undone.kind,
            "cause": cause.kind,
            "request_id": cause.request_id,
        })
        .to_string(),
    }
}

/// A contact an erasure removed.
#[derive(Debug, Clone)]
pub struct ErasedContact {
    pub id: String,
    pub connection_id: String,
    pub provider: String,
    pub remote_id: String,
}

/// What an erasure did: its suppression, and the contacts it removed.
#[derive(Debug, Clone)]
pub struct Erased {
    pub suppression_id: String,
    pub kinds: Vec<String>,
    pub contacts: Vec<ErasedContact>,
}

impl ContactChange<'_> {
    /// Erases a person: its contacts (and `also`, contacts of it a delete at
    /// the provider just took out of it), the deleted contacts of the org
    /// holding one of its phones or LIDs, and every row holding their data
    /// go; what is left is a suppression of each identifier it had, as keyed
    /// hashes, and events that carry ids only.
    pub fn erase(
        &mut self,
        person: &str,
        also: &[String],
        actor: &Actor,
    ) -> Result<Erased, StoreError> {
        use crate::store::{contacts, suppressions};
        let org = self.org_id();
        if also.is_empty() {
            self.existing_person(person)?;
        }
        let mut ids: Vec<String> = people::members(self.conn(), &[person.to_string()])?
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        ids.extend(also.iter().cloned());
        ids.sort();
        ids.dedup();
        // Its identifiers: phone and LID keys, and the records' emails.
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut identifiers: BTreeSet<(String, String)> =
            people::keys_of_contacts(self.conn(), &refs, &link::LINK_KINDS)?
                .into_iter()
                .map(|(_, kind, value)| (kind, value))
                .collect();
        // Deleted contacts holding one of them are its old records: they go too.
        for kind in link::LINK_KINDS {
            let values: Vec<&str> = identifiers
                .iter()
                .filter(|(k, _)| k == kind)
                .map(|(_, v)| v.as_str())
                .collect();
            let holders = people::contacts_with_keys(self.conn(), kind, &values)?;
            let holders: Vec<&String> = holders.iter().collect();
            for (id, _, deleted) in people::find_link_state(self.conn(), org, &holders)? {
                if deleted && !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        let marked: Vec<(String, ())> = ids.iter().map(|id| (id.clone(), ())).collect();
        let rows: Vec<_> = contacts::find_contacts(self.conn(), org, &marked)?
            .into_iter()
            .map(|(row, ())| row)
            .collect();
        for row in &rows {
            let canonical = contacts::to_canonical(row, false)?;
            for email in &canonical.record.emails {
                identifiers.insert(("email".into(), email.address.to_lowercase()));
            }
        }
        let sealer = self
            .sealer
            .clone()
            .ok_or(StoreError::Secret(crate::secrets::SecretError::BadKey))?;
        let key = suppressions::identifier_key(self.conn(), &sealer, org, true)?
            .ok_or_else(|| StoreError::Corrupt("an identifier key just made".into()))?;
        let hashes: Vec<(String, String)> = identifiers
            .iter()
            .map(|(kind, value)| {
                (
                    kind.clone(),
                    suppressions::identifier_hash(&key, kind, value),
                )
            })
            .collect();
        let kinds: Vec<String> = identifiers
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let suppression = suppressions::SuppressionRow {
            id: ids::new_id(ids::SUPPRESSION),
            org_id: org.to_string(),
            kinds: kinds.join(","),
            reason: actor.reason.clone(),
            api_key_id: actor.api_key_id.clone(),
            request_id: actor.request_id.clone(),
            created_at: ids::now(),
        };
        suppressions::insert(self.conn(), &suppression, &hashes)?;
        let erased: Vec<ErasedContact> = rows
            .iter()
            .map(|row| ErasedContact {
                id: row.id.clone(),
                connection_id: row.connection_id.clone(),
                provider: row.provider.clone(),
                remote_id: row.remote_id.clone(),
            })
            .collect();
        let cause = self.cause().clone();
        for c in &erased {
            self.events.push(NewEvent {
                event_type: EventType::ContactErased,
                connection_id: Some(c.connection_id.clone()),
                data: serde_json::json!({
                    "contact_id": c.id,
                    "person_id": person,
                    "connection_id": c.connection_id,
                    "provider": c.provider,
                    "suppression_id": suppression.id,
                    "cause": cause.kind,
                    "request_id": cause.request_id,
                })
                .to_string(),
            });
        }
        self.events.push(NewEvent {
            event_type: EventType::PersonErased,
            connection_id: None,
            data: serde_json::json!({
                "person_id": person,
                "contact_ids": erased.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
                "suppression_id": suppression.id,
                "cause": cause.kind,
                "request_id": cause.request_id,
            })
            .to_string(),
        });
        let triples: Vec<(String, String, String)> = erased
            .iter()
            .map(|c| (c.id.clone(), c.connection_id.clone(), c.remote_id.clone()))
            .collect();
        suppressions::erase_contacts(self.conn(), org, &triples)?;
        people::delete_empty_people(self.conn(), org, Some(&[person.to_string()]))?;
        self.wrote = true;
        Ok(Erased {
            suppression_id: suppression.id,
            kinds,
            contacts: erased,
        })
    }
}
