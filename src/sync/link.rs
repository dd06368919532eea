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

/// Inserts new people, many rows per statement.
fn insert_people(
    conn: &mut DbConnection,
    org_id: &str,
    new_people: &[u128],
    now: chrono::NaiveDateTime,
) -> Result<(), StoreError> {
    for chunk in new_people.chunks(500) {
        let names: Vec<String> = chunk.iter().map(|p| id_of(ids::PERSON, *p)).collect();
        let rows: Vec<_> = names
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
    Ok(())
}

/// Points contacts (by index into `ids_of`) at their people.
fn write_moves(
    conn: &mut DbConnection,
    ids_of: &[u128],
    moves: &[(u32, u128)],
) -> Result<(), StoreError> {
    for chunk in moves.chunks(500) {
        let named: Vec<(String, String)> = chunk
            .iter()
            .map(|(i, p)| {
                (
                    id_of(ids::CONTACT, ids_of[*i as usize]),
                    id_of(ids::PERSON, *p),
                )
            })
            .collect();
        let pairs: Vec<(&str, String)> =
            named.iter().map(|(c, p)| (c.as_str(), p.clone())).collect();
        set_people(conn, &pairs)?;
    }
    Ok(())
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

/// `ctc_…`/`per_…` ids are a prefix and a ULID: 16 bytes instead of a string.
fn ulid_of(id: &str) -> Result<u128, StoreError> {
    let (_, body) = id
        .split_once('_')
        .ok_or_else(|| StoreError::Corrupt(format!("id `{id}` has no prefix")))?;
    ulid::Ulid::from_string(&body.to_ascii_uppercase())
        .map(|u| u.0)
        .map_err(|_| StoreError::Corrupt(format!("id `{id}` is not a ULID")))
}

fn id_of(prefix: &str, ulid: u128) -> String {
    format!("{prefix}_{}", ulid::Ulid(ulid).to_string().to_lowercase())
}

/// Relinks every live contact of the org, in one transaction. Memory is kept small
/// per contact (ids as 128-bit ULIDs, keys as 128-bit hashes, indexes as u32), and
/// rows are read and written in chunks.
pub fn link_org(conn: &mut DbConnection, org_id: &str) -> Result<LinkCounts, StoreError> {
    conn.transaction(|conn| {
        // Live contacts in id order: an index is a position, found by binary search.
        let mut ids_of: Vec<u128> = Vec::new();
        let mut person_of: Vec<u128> = Vec::new(); // 0 = none
        let mut after: Option<String> = None;
        loop {
            let mut q = contacts::table
                .filter(contacts::org_id.eq(org_id))
                .filter(contacts::remote_was_deleted.eq(false))
                .order(contacts::id.asc())
                .select((contacts::id, contacts::person_id))
                .limit(20_000)
                .into_boxed();
            if let Some(a) = &after {
                q = q.filter(contacts::id.gt(a.clone()));
            }
            let rows: Vec<(String, Option<String>)> = q.load(conn)?;
            let Some(last) = rows.last().map(|r| r.0.clone()) else {
                break;
            };
            for (id, person) in rows {
                ids_of.push(ulid_of(&id)?);
                person_of.push(person.as_deref().map(ulid_of).transpose()?.unwrap_or(0));
            }
            after = Some(last);
        }
        let n = ids_of.len();
        let mut uf = UnionFind::new(n);
        // Keys in (kind, value) order: equal keys are adjacent, so no map of keys is
        // held; read in pages by keyset.
        let mut last: Option<(String, String, String)> = None;
        let mut previous: Option<(String, String, usize)> = None;
        loop {
            let mut q = contact_keys::table
                .inner_join(contacts::table)
                .filter(contacts::org_id.eq(org_id))
                .filter(contacts::remote_was_deleted.eq(false))
                .filter(contact_keys::kind.eq_any(["phone", "lid"]))
                .order((
                    contact_keys::kind.asc(),
                    contact_keys::value.asc(),
                    contact_keys::contact_id.asc(),
                ))
                .select((
                    contact_keys::kind,
                    contact_keys::value,
                    contact_keys::contact_id,
                ))
                .limit(20_000)
                .into_boxed();
            if let Some((k, v, c)) = &last {
                q = q.filter(
                    contact_keys::kind
                        .gt(k.clone())
                        .or(contact_keys::kind
                            .eq(k.clone())
                            .and(contact_keys::value.gt(v.clone())))
                        .or(contact_keys::kind
                            .eq(k.clone())
                            .and(contact_keys::value.eq(v.clone()))
                            .and(contact_keys::contact_id.gt(c.clone()))),
                );
            }
            let rows: Vec<(String, String, String)> = q.load(conn)?;
            let Some(end) = rows.last().cloned() else {
                break;
            };
            for (kind, value, contact_id) in rows {
                let Ok(i) = ids_of.binary_search(&ulid_of(&contact_id)?) else {
                    continue;
                };
                if let Some((pk, pv, pi)) = &previous {
                    if *pk == kind && *pv == value {
                        uf.union(i, *pi);
                        continue;
                    }
                }
                previous = Some((kind, value, i));
            }
            last = Some(end);
        }
        // Groups: indexes sorted by root give runs; runs sorted by size (desc), then by
        // root, which is the group's oldest contact (union keeps the smaller index).
        let roots: Vec<u32> = (0..n).map(|i| uf.find(i) as u32).collect();
        drop(uf);
        let mut by_root: Vec<u32> = (0..n as u32).collect();
        by_root.sort_unstable_by_key(|&i| (roots[i as usize], i));
        let mut runs: Vec<(u32, u32)> = Vec::new(); // (start in by_root, length)
        let mut s = 0;
        while s < n {
            let r = roots[by_root[s] as usize];
            let mut e = s;
            while e < n && roots[by_root[e] as usize] == r {
                e += 1;
            }
            runs.push((s as u32, (e - s) as u32));
            s = e;
        }
        runs.sort_unstable_by_key(|&(start, len)| {
            (
                std::cmp::Reverse(len),
                roots[by_root[start as usize] as usize],
            )
        });

        // Only existing person ids can be claimed twice; new ones are unique already.
        let mut claimed: std::collections::HashSet<u128> = std::collections::HashSet::new();
        let mut counts = LinkCounts::default();
        let now = ids::now();
        // Written whenever a chunk fills, so neither list grows with the org.
        let mut new_people: Vec<u128> = Vec::new();
        let mut moves: Vec<(u32, u128)> = Vec::new();
        let mut touched: std::collections::BTreeSet<u128> = std::collections::BTreeSet::new();
        for &(run_start, run_len) in &runs {
            let (start, end) = (run_start as usize, (run_start + run_len) as usize);
            let group = &by_root[start..end];
            counts.people += 1;
            let mut votes: HashMap<u128, usize> = HashMap::new();
            for &i in group {
                let p = person_of[i as usize];
                if p != 0 && !claimed.contains(&p) {
                    *votes.entry(p).or_default() += 1;
                }
            }
            let person = match votes
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            {
                Some((p, _)) => {
                    claimed.insert(p);
                    p
                }
                None => {
                    let p = ulid::Ulid::new().0;
                    new_people.push(p);
                    counts.people_created += 1;
                    if new_people.len() >= 500 {
                        insert_people(conn, org_id, &new_people, now)?;
                        new_people.clear();
                    }
                    p
                }
            };
            for &i in group {
                if person_of[i as usize] != person {
                    moves.push((i, person));
                    counts.contacts_moved += 1;
                    if person_of[i as usize] != 0 {
                        touched.insert(person);
                    }
                }
            }
            if moves.len() >= 500 {
                // People before the contacts that point at them.
                insert_people(conn, org_id, &new_people, now)?;
                new_people.clear();
                write_moves(conn, &ids_of, &moves)?;
                moves.clear();
            }
        }
        drop(claimed);
        insert_people(conn, org_id, &new_people, now)?;
        write_moves(conn, &ids_of, &moves)?;
        let touched: Vec<String> = touched.into_iter().map(|p| id_of(ids::PERSON, p)).collect();
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
