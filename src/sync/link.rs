//! Identity linking: contacts that share an E.164 phone (valid or not, compared
//! exactly) or a WhatsApp LID are one person, transitively. Person ids stay stable:
//! each group keeps the id most of its contacts already had (bigger groups choose
//! first, so when a person splits the larger part keeps the id); a group with none
//! gets a new one, and people left without contacts are removed. Deleted contacts
//! belong to no person.

use std::collections::HashMap;

use diesel::prelude::*;

use crate::ids;
use crate::store::schema::{contact_keys, contacts, people};
use crate::store::{DbConnection, StoreError};

struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// Our own ids only ever hold these characters, so they can be written into SQL.
fn is_plain_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Sets each contact's person in one statement: `CASE id WHEN … THEN … END`.
fn set_people(conn: &mut DbConnection, moves: &[(&str, String)]) -> Result<(), StoreError> {
    use diesel::connection::SimpleConnection;
    if moves
        .iter()
        .any(|(c, p)| !is_plain_id(c) || !is_plain_id(p))
    {
        return Err(StoreError::Corrupt(
            "an id with unexpected characters".into(),
        ));
    }
    let cases: String = moves
        .iter()
        .map(|(c, p)| format!(" WHEN '{c}' THEN '{p}'"))
        .collect();
    let list: Vec<String> = moves.iter().map(|(c, _)| format!("'{c}'")).collect();
    conn.batch_execute(&format!(
        "UPDATE contacts SET person_id = CASE id{cases} END WHERE id IN ({})",
        list.join(",")
    ))?;
    Ok(())
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkCounts {
    pub people: usize,
    pub contacts_moved: usize,
    pub people_created: usize,
    pub people_removed: usize,
}

/// Relinks every live contact of the org. Runs in one transaction.
pub fn link_org(conn: &mut DbConnection, org_id: &str) -> Result<LinkCounts, StoreError> {
    conn.transaction(|conn| {
        let members: Vec<(String, Option<String>)> = contacts::table
            .filter(contacts::org_id.eq(org_id))
            .filter(contacts::remote_was_deleted.eq(false))
            .order(contacts::id.asc())
            .select((contacts::id, contacts::person_id))
            .load(conn)?;
        let index: HashMap<&str, usize> = members
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id.as_str(), i))
            .collect();
        let keys: Vec<(String, String, String)> = contact_keys::table
            .inner_join(contacts::table)
            .filter(contacts::org_id.eq(org_id))
            .filter(contacts::remote_was_deleted.eq(false))
            .filter(contact_keys::kind.eq_any(["phone", "lid"]))
            .select((
                contact_keys::contact_id,
                contact_keys::kind,
                contact_keys::value,
            ))
            .load(conn)?;
        let mut uf = UnionFind::new(members.len());
        let mut first_of: HashMap<(String, String), usize> = HashMap::new();
        for (contact_id, kind, value) in keys {
            let Some(&i) = index.get(contact_id.as_str()) else {
                continue;
            };
            match first_of.get(&(kind.clone(), value.clone())) {
                Some(&j) => uf.union(i, j),
                None => {
                    first_of.insert((kind, value), i);
                }
            }
        }
        let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
        for i in 0..members.len() {
            let root = uf.find(i);
            groups.entry(root).or_default().push(i);
        }
        let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
        // Bigger groups choose their id first; ties by their oldest contact.
        groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));

        let mut claimed: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut counts = LinkCounts {
            people: groups.len(),
            ..LinkCounts::default()
        };
        let now = ids::now();
        let mut new_people: Vec<String> = Vec::new();
        // (contact id, person id) for every contact whose person changes.
        let mut moves: Vec<(&str, String)> = Vec::new();
        for group in &groups {
            let mut votes: HashMap<&str, usize> = HashMap::new();
            for &i in group {
                if let Some(p) = members[i].1.as_deref() {
                    *votes.entry(p).or_default() += 1;
                }
            }
            let mut candidates: Vec<(&str, usize)> = votes
                .into_iter()
                .filter(|(p, _)| !claimed.contains(*p))
                .collect();
            candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let person = match candidates.first() {
                Some((p, _)) => p.to_string(),
                None => {
                    let id = ids::new_id(ids::PERSON);
                    new_people.push(id.clone());
                    id
                }
            };
            claimed.insert(person.clone());
            for &i in group {
                if members[i].1.as_deref() != Some(person.as_str()) {
                    moves.push((members[i].0.as_str(), person.clone()));
                }
            }
        }
        counts.people_created = new_people.len();
        counts.contacts_moved = moves.len();
        for chunk in new_people.chunks(500) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|id| {
                    (
                        people::id.eq(id),
                        people::org_id.eq(org_id),
                        people::created_at.eq(now),
                        people::updated_at.eq(now),
                    )
                })
                .collect();
            // Multi-row inserts exist per backend, not on the MultiBackend.
            match conn {
                DbConnection::Sqlite(c) => diesel::insert_into(people::table)
                    .values(&rows)
                    .execute(c)?,
                DbConnection::Postgresql(c) => diesel::insert_into(people::table)
                    .values(&rows)
                    .execute(c)?,
            };
        }
        for chunk in moves.chunks(500) {
            set_people(conn, chunk)?;
        }
        let touched: std::collections::BTreeSet<&str> =
            moves.iter().map(|(_, p)| p.as_str()).collect();
        let touched: Vec<&str> = touched.into_iter().collect();
        for chunk in touched.chunks(500) {
            diesel::update(people::table.filter(people::id.eq_any(chunk)))
                .set(people::updated_at.eq(now))
                .execute(conn)?;
        }
        // Deleted contacts belong to nobody; people without contacts go.
        diesel::update(
            contacts::table
                .filter(contacts::org_id.eq(org_id))
                .filter(contacts::remote_was_deleted.eq(true))
                .filter(contacts::person_id.is_not_null()),
        )
        .set(contacts::person_id.eq(None::<String>))
        .execute(conn)?;
        counts.people_removed =
            diesel::delete(people::table.filter(people::org_id.eq(org_id)).filter(
                diesel::dsl::not(diesel::dsl::exists(
                    contacts::table.filter(contacts::person_id.eq(people::id.nullable())),
                )),
            ))
            .execute(conn)?;
        Ok(counts)
    })
}
