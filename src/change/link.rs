//! Identity linking: contacts that share an E.164 phone (valid or not, compared
//! exactly) or a WhatsApp LID are one person, transitively, unless more live
//! contacts of the org share that identifier than `LinkRules::max_per_identifier`
//! (then it links none of them: a switchboard number). Person ids stay stable:
//! each group keeps the id most of its contacts already had (bigger groups choose
//! first, so when a person splits the larger part keeps the id); a group with none
//! gets a new one, and people left without contacts are removed. Deleted contacts
//! belong to no person.
//!
//! The grouping (union-find, which group keeps which person) is pure; every read
//! and write goes through `store::people`, inside the caller's transaction.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};

use crate::ids;
use crate::store::event_type::EventType;
use crate::store::events::{person_event, Cause, NewEvent};
use crate::store::identity;
use crate::store::people as queries;
use crate::store::{DbConnection, StoreError};

/// Union-find over contacts, with the apart rules of manual splits: each root
/// carries the `(operation, part)` tags of the parts its contacts belong to,
/// and two roots tagged with different parts of one operation never join.
struct UnionFind {
    parent: Vec<usize>,
    apart: HashMap<usize, Vec<(u32, i32)>>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
            apart: HashMap::new(),
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    /// Joins the groups of `a` and `b` unless a split keeps them apart.
    fn union(&mut self, a: usize, b: usize) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return true;
        }
        if !self.apart.is_empty() {
            if let (Some(ta), Some(tb)) = (self.apart.get(&ra), self.apart.get(&rb)) {
                if ta
                    .iter()
                    .any(|(op, part)| tb.iter().any(|(o, p)| o == op && p != part))
                {
                    return false;
                }
            }
        }
        let (root, child) = (ra.min(rb), ra.max(rb));
        self.parent[child] = root;
        if let Some(tags) = self.apart.remove(&child) {
            self.apart.entry(root).or_default().extend(tags);
        }
        true
    }

    /// Applies the bonds of the operations in force, newest first (a later
    /// operation wins over an earlier one it contradicts): each part's contacts
    /// join, and the parts of one operation are tagged to stay apart, unless a
    /// later operation joined them already. `bonds`: `(operation, node, part)`.
    fn bond(&mut self, mut bonds: Vec<(String, usize, i32)>) {
        bonds.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(&b.2)).then(a.1.cmp(&b.1)));
        for (n, op) in bonds.chunk_by(|a, b| a.0 == b.0).enumerate() {
            for part in op.chunk_by(|a, b| a.2 == b.2) {
                for pair in part.windows(2) {
                    self.union(pair[0].1, pair[1].1);
                }
            }
            let mut roots: HashMap<usize, i32> = HashMap::new();
            let mut overridden = false;
            for &(_, node, part) in op {
                let root = self.find(node);
                if *roots.entry(root).or_insert(part) != part {
                    overridden = true;
                }
            }
            let parts: BTreeSet<i32> = roots.values().copied().collect();
            if overridden || parts.len() < 2 {
                continue;
            }
            for (root, part) in roots {
                self.apart.entry(root).or_default().push((n as u32, part));
            }
        }
    }
}

/// What identity control adds to the identifiers when linking an org: the
/// blocked values (which link nobody), and whether any bond is in force.
struct Manual {
    blocked: HashSet<(String, String)>,
    has_bonds: bool,
}

impl Manual {
    fn of_org(conn: &mut DbConnection, org_id: &str) -> Result<Self, StoreError> {
        Ok(Self {
            blocked: identity::blocked_values(conn, org_id)?
                .into_iter()
                .collect(),
            has_bonds: identity::org_has_bonds(conn, org_id)?,
        })
    }

    fn blocks(&self, kind: &str, value: &str) -> bool {
        !self.blocked.is_empty()
            && self
                .blocked
                .contains(&(kind.to_string(), value.to_string()))
    }
}

/// People to create and contacts to move, handed over in chunks while a
/// settlement runs (so neither list grows with the org): the people first, since
/// the contacts point at them.
pub struct Flush<'a> {
    pub new_people: &'a [u128],
    /// (contact index, person).
    pub moves: &'a [(u32, u128)],
}

/// Writes a flush: the new people, then the moved contacts.
fn write_flush(
    conn: &mut DbConnection,
    org_id: &str,
    ids_of: &[u128],
    now: chrono::NaiveDateTime,
    flush: Flush<'_>,
) -> Result<(), StoreError> {
    let people: Vec<String> = flush
        .new_people
        .iter()
        .map(|p| id_of(ids::PERSON, *p))
        .collect();
    queries::insert_people(conn, org_id, &people, now)?;
    let moves: Vec<(String, String)> = flush
        .moves
        .iter()
        .map(|(i, p)| {
            (
                id_of(ids::CONTACT, ids_of[*i as usize]),
                id_of(ids::PERSON, *p),
            )
        })
        .collect();
    queries::set_people(conn, &moves)
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LinkCounts {
    pub people: usize,
    pub contacts_moved: usize,
    pub people_created: usize,
    pub people_removed: usize,
    /// What happened to people, for their events.
    pub changes: PersonChanges,
}

/// What a settlement did to people (ids as ULIDs, `removed` as ids).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PersonChanges {
    /// People made for a group that had none to keep.
    pub created: Vec<u128>,
    /// `(kept, absorbed)`: people whose every contact joined the kept one.
    pub merged: Vec<(u128, Vec<u128>)>,
    /// `(person, into)`: a person whose contacts now belong to several (itself
    /// among them when it kept some).
    pub split: Vec<(u128, Vec<u128>)>,
    /// People left without contacts, deleted.
    pub removed: Vec<String>,
}

impl PersonChanges {
    /// Their events, in this order: created, merged, split, deleted.
    pub fn events(&self, cause: &Cause) -> Vec<NewEvent> {
        let id = |p: &u128| id_of(ids::PERSON, *p);
        let ids = |ps: &[u128]| ps.iter().map(id).collect::<Vec<_>>();
        let mut out = Vec::new();
        for p in &self.created {
            out.push(person_event(
                EventType::PersonCreated,
                &id(p),
                None,
                None,
                cause,
            ));
        }
        for (kept, absorbed) in &self.merged {
            let absorbed = ids(absorbed);
            out.push(person_event(
                EventType::PersonMerged,
                &id(kept),
                Some(&absorbed),
                None,
                cause,
            ));
        }
        for (person, into) in &self.split {
            let into = ids(into);
            out.push(person_event(
                EventType::PersonSplit,
                &id(person),
                None,
                Some(&into),
                cause,
            ));
        }
        for p in &self.removed {
            out.push(person_event(EventType::PersonDeleted, p, None, None, cause));
        }
        out
    }
}

/// `ctc_…`/`per_…` ids are a prefix and a ULID: 16 bytes instead of a string.
pub(crate) fn ulid_of(id: &str) -> Result<u128, StoreError> {
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

pub use crate::store::people::lock_org;

/// What linking decides for a set of live contacts: each group of linked contacts
/// keeps the person most of it already had (bigger groups choose first, ties to the
/// group with the oldest contact, votes tied to the smaller person id), or gets a
/// new one. Pure: the people to create and the contacts to move go to `flush` in
/// chunks of 500.
///
/// `ids_of` are the contacts in id order, `person_of` their people (0 = none),
/// `roots` each one's group (the smallest index in it) and `incoming` which are not
/// stored yet (their people are returned, not moved). Returns the counts, the
/// incoming contacts' people and the existing people that gained or lost a contact.
#[allow(clippy::type_complexity)]
pub fn settle(
    ids_of: &[u128],
    person_of: &[u128],
    roots: &[u32],
    incoming: &[bool],
    flush: &mut dyn FnMut(Flush<'_>) -> Result<(), StoreError>,
) -> Result<(LinkCounts, Vec<(u32, u128)>, BTreeSet<u128>), StoreError> {
    let mut assigned: Vec<(u32, u128)> = Vec::new();
    let n = ids_of.len();
    // Indexes sorted by root give runs; runs sorted by size (desc), then by root.
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
    let mut claimed: HashSet<u128> = HashSet::new();
    let mut counts = LinkCounts::default();
    let mut new_people: Vec<u128> = Vec::new();
    let mut moves: Vec<(u32, u128)> = Vec::new();
    let mut touched: BTreeSet<u128> = BTreeSet::new();
    // Each group's former people, and where each former person's contacts went.
    let mut merges: Vec<(u128, Vec<u128>)> = Vec::new();
    let mut went_to: HashMap<u128, BTreeSet<u128>> = HashMap::new();
    for &(run_start, run_len) in &runs {
        let (start, end) = (run_start as usize, (run_start + run_len) as usize);
        let group = &by_root[start..end];
        counts.people += 1;
        let former: BTreeSet<u128> = group
            .iter()
            .map(|&i| person_of[i as usize])
            .filter(|&p| p != 0)
            .collect();
        let mut votes: HashMap<u128, usize> = HashMap::new();
        for &i in group {
            let p = person_of[i as usize];
            if p != 0 && !claimed.contains(&p) {
                *votes.entry(p).or_default() += 1;
            }
        }
        let (person, existing) = match votes
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        {
            Some((p, _)) => {
                claimed.insert(p);
                (p, true)
            }
            None => {
                let p = ulid::Ulid::new().0;
                new_people.push(p);
                counts.people_created += 1;
                counts.changes.created.push(p);
                if new_people.len() >= 500 {
                    flush(Flush {
                        new_people: &new_people,
                        moves: &[],
                    })?;
                    new_people.clear();
                }
                (p, false)
            }
        };
        for &f in &former {
            went_to.entry(f).or_default().insert(person);
        }
        if former.iter().any(|&f| f != person) {
            merges.push((
                person,
                former.into_iter().filter(|&f| f != person).collect(),
            ));
        }
        for &i in group {
            let old = person_of[i as usize];
            if incoming.get(i as usize).copied().unwrap_or(false) {
                assigned.push((i, person));
                if existing {
                    touched.insert(person);
                }
            } else if old != person {
                moves.push((i, person));
                counts.contacts_moved += 1;
                if old != 0 {
                    touched.insert(old);
                }
                if existing {
                    touched.insert(person);
                }
            }
        }
        if moves.len() >= 500 {
            flush(Flush {
                new_people: &new_people,
                moves: &moves,
            })?;
            new_people.clear();
            moves.clear();
        }
    }
    if !new_people.is_empty() || !moves.is_empty() {
        flush(Flush {
            new_people: &new_people,
            moves: &moves,
        })?;
    }
    // A former person whose contacts went to several people split; one whose
    // contacts all went to another was merged into it.
    let mut split: Vec<(u128, Vec<u128>)> = went_to
        .iter()
        .filter(|(_, to)| to.len() > 1)
        .map(|(&p, to)| (p, to.iter().copied().collect()))
        .collect();
    split.sort_unstable();
    counts.changes.split = split;
    for (kept, former) in merges {
        let absorbed: Vec<u128> = former
            .into_iter()
            .filter(|f| went_to.get(f).is_some_and(|to| to.len() == 1))
            .collect();
        if !absorbed.is_empty() {
            counts.changes.merged.push((kept, absorbed));
        }
    }
    Ok((counts, assigned, touched))
}

/// `settle`, its flushes written, and the people it touched marked as changed.
fn settle_and_write(
    conn: &mut DbConnection,
    org_id: &str,
    ids_of: &[u128],
    person_of: &[u128],
    roots: &[u32],
    incoming: &[bool],
) -> Result<(LinkCounts, Vec<(u32, u128)>), StoreError> {
    let now = ids::now();
    let (counts, assigned, touched) = settle(ids_of, person_of, roots, incoming, &mut |f| {
        write_flush(conn, org_id, ids_of, now, f)
    })?;
    let touched: Vec<String> = touched.into_iter().map(|p| id_of(ids::PERSON, p)).collect();
    queries::touch_people(conn, &touched, now)?;
    Ok((counts, assigned))
}

/// Relinks every live contact of the org, in one transaction: the whole-org
/// recomputation (repairs, and the reference the incremental linking is tested
/// against). Memory is kept small per contact (ids as 128-bit ULIDs, indexes as
/// u32), and rows are read and written in chunks.
pub fn link_org(
    conn: &mut DbConnection,
    org_id: &str,
    rules: LinkRules,
) -> Result<LinkCounts, StoreError> {
    crate::store::in_transaction(conn, |conn| {
        lock_org(conn, org_id)?;
        // Live contacts in id order: an index is a position, found by binary search.
        let mut ids_of: Vec<u128> = Vec::new();
        let mut person_of: Vec<u128> = Vec::new(); // 0 = none
        let mut after: Option<String> = None;
        loop {
            let rows = queries::live_contacts_page(conn, org_id, after.as_deref(), 20_000)?;
            let Some(last) = rows.last().map(|r| r.0.clone()) else {
                break;
            };
            for (id, person) in rows {
                ids_of.push(ulid_of(&id)?);
                person_of.push(person.as_deref().map(ulid_of).transpose()?.unwrap_or(0));
            }
            after = Some(last);
        }
        let mut uf = UnionFind::new(ids_of.len());
        // Manual bonds first: they win over what identifiers say.
        let manual = Manual::of_org(conn, org_id)?;
        if manual.has_bonds {
            let mut bonds = Vec::new();
            for (op, contact, part) in identity::bonds_of_org(conn, org_id)? {
                if let Ok(i) = ids_of.binary_search(&ulid_of(&contact)?) {
                    bonds.push((op, i, part));
                }
            }
            uf.bond(bonds);
        }
        // Keys read per kind in value order: equal keys are adjacent, so no map of
        // keys is held; pages by keyset on (value, contact). A key's holders are
        // unioned once all are read, if the rules let it link them.
        let mut holders: Vec<usize> = Vec::new();
        let union_all = |uf: &mut UnionFind, holders: &mut Vec<usize>, blocked: bool| {
            if !blocked && rules.links(holders.len()) {
                for pair in holders.windows(2) {
                    uf.union(pair[0], pair[1]);
                }
            }
            holders.clear();
        };
        for kind in LINK_KINDS {
            let mut last: Option<(String, String)> = None;
            let mut current: Option<String> = None;
            loop {
                let rows = queries::live_keys_page(conn, org_id, kind, last.as_ref(), 20_000)?;
                let Some(end) = rows.last().cloned() else {
                    break;
                };
                for (value, contact_id) in rows {
                    let Ok(i) = ids_of.binary_search(&ulid_of(&contact_id)?) else {
                        continue;
                    };
                    if current.as_ref() != Some(&value) {
                        let blocked = current.as_ref().is_some_and(|v| manual.blocks(kind, v));
                        union_all(&mut uf, &mut holders, blocked);
                        current = Some(value);
                    }
                    holders.push(i);
                }
                last = Some(end);
            }
            let blocked = current.as_ref().is_some_and(|v| manual.blocks(kind, v));
            union_all(&mut uf, &mut holders, blocked);
        }
        let roots: Vec<u32> = (0..ids_of.len()).map(|i| uf.find(i) as u32).collect();
        drop(uf);
        let (mut counts, _) = settle_and_write(conn, org_id, &ids_of, &person_of, &roots, &[])?;
        // Deleted contacts belong to nobody; people without contacts go.
        queries::unlink_deleted(conn, org_id)?;
        counts.changes.removed = queries::delete_empty_people(conn, org_id, None)?;
        counts.people_removed = counts.changes.removed.len();
        Ok(counts)
    })
}

/// The phone and LID keys of a region's live contacts, as they are read.
#[derive(Default)]
struct RegionKeys {
    /// The contacts (node indexes) seen holding each key.
    holders: HashMap<(String, String), Vec<usize>>,
    /// Keys seen for the first time since the last lookup of other contacts holding them.
    new: Vec<(String, String)>,
}

impl RegionKeys {
    fn note(&mut self, node: usize, kind: String, value: String) {
        match self.holders.entry((kind, value)) {
            Entry::Occupied(mut e) => {
                if !e.get().contains(&node) {
                    e.get_mut().push(node);
                }
            }
            Entry::Vacant(e) => {
                self.new.push(e.key().clone());
                e.insert(vec![node]);
            }
        }
    }
}

/// How identifiers link contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkRules {
    /// An identifier that more live contacts than this hold links none of them
    /// (a company's switchboard number, shared by strangers).
    pub max_per_identifier: usize,
}

impl Default for LinkRules {
    fn default() -> Self {
        Self {
            max_per_identifier: 50,
        }
    }
}

impl LinkRules {
    /// Whether a key held by `holders` live contacts links them.
    fn links(&self, holders: usize) -> bool {
        holders >= 2 && holders <= self.max_per_identifier
    }
}

/// The key kinds that link contacts into one person.
pub const LINK_KINDS: [&str; 2] = ["lid", "phone"];

/// Relinks after a change to `changed` contacts (created, edited, deleted or
/// revived), inside the caller's transaction. Only the part of the org the change
/// can reach is read: the changed contacts, every live contact sharing a phone or
/// LID with one of them, every contact of a person one of them belonged to, and so
/// on until nothing new is reached. People outside that region cannot gain or lose
/// a contact, so the outcome is the one `link_org` would give, at the cost of the
/// change instead of the org.
pub fn link_contacts(
    conn: &mut DbConnection,
    org_id: &str,
    changed: &[String],
    rules: LinkRules,
) -> Result<LinkCounts, StoreError> {
    link_incoming(conn, org_id, changed, &[], &[], rules).map(|(counts, _)| counts)
}

/// A contact about to be inserted: its id and its phone and LID keys.
pub struct Incoming<'a> {
    pub id: &'a str,
    pub keys: Vec<(&'static str, &'a str)>,
}

/// `link_contacts`, also for contacts not stored yet (`incoming`): their people
/// are returned by contact id, so that they are inserted with them instead of
/// updated right after (a page of new contacts is then written once).
pub fn link_incoming(
    conn: &mut DbConnection,
    org_id: &str,
    changed: &[String],
    incoming: &[Incoming<'_>],
    touched: &[(String, String)],
    rules: LinkRules,
) -> Result<(LinkCounts, HashMap<String, String>), StoreError> {
    if changed.is_empty() && incoming.is_empty() && touched.is_empty() {
        return Ok((LinkCounts::default(), HashMap::new()));
    }
    lock_org(conn, org_id)?;
    struct Node {
        id: String,
        person: Option<String>,
        live: bool,
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut persons_seen: HashSet<String> = HashSet::new();
    let mut keys = RegionKeys::default();
    // Contacts to read next: any (`frontier`: the changed ones and their people's),
    // or live ones only (`sharing`: found by a key). Each query is a lookup by an
    // index on its own column, whatever statistics the planner has.
    let mut frontier: Vec<String> = changed.to_vec();
    let mut sharing: Vec<String> = Vec::new();
    for contact in incoming {
        let i = nodes.len();
        index.insert(contact.id.to_string(), i);
        nodes.push(Node {
            id: contact.id.to_string(),
            person: None,
            live: true,
        });
        for (kind, value) in &contact.keys {
            if LINK_KINDS.contains(kind) {
                keys.note(i, kind.to_string(), value.to_string());
            }
        }
    }
    let first_stored = nodes.len();
    let manual = Manual::of_org(conn, org_id)?;
    // The operations in force holding a contact of the region, and their bonds.
    let mut operations_seen: HashSet<String> = HashSet::new();
    let mut bonds: Vec<(String, String, i32)> = Vec::new();
    // Keys the changed contacts held before (`touched`) or held when deleted:
    // their holders are read too, since one holder fewer may bring a key back
    // under `max_per_identifier`, which links the rest.
    keys.new.extend(
        touched
            .iter()
            .filter(|(kind, _)| LINK_KINDS.contains(&kind.as_str()))
            .cloned(),
    );
    while !frontier.is_empty() || !sharing.is_empty() || !keys.new.is_empty() {
        let mut reached: Vec<usize> = Vec::new();
        for (list, live_only) in [(&frontier, false), (&sharing, true)] {
            let mut list: Vec<&String> =
                list.iter().filter(|id| !index.contains_key(*id)).collect();
            list.sort_unstable();
            list.dedup();
            for (id, person, deleted) in queries::find_link_state(conn, org_id, &list)? {
                if (live_only && deleted) || index.contains_key(&id) {
                    continue;
                }
                index.insert(id.clone(), nodes.len());
                reached.push(nodes.len());
                nodes.push(Node {
                    id,
                    person,
                    live: !deleted,
                });
            }
        }
        frontier.clear();
        sharing.clear();
        // Every contact of a person reached: the person may split. (Person ids are
        // one org's, so the index on `person_id` alone answers.)
        let persons: Vec<String> = reached
            .iter()
            .filter_map(|&i| nodes[i].person.clone())
            .filter(|p| persons_seen.insert(p.clone()))
            .collect();
        let ids = queries::contact_ids_of_people(conn, &persons)?;
        frontier.extend(ids.into_iter().filter(|id| !index.contains_key(id)));
        // The keys of the live contacts reached, and every contact sharing one (other
        // orgs' and deleted ones are left out when read).
        let live: Vec<&str> = reached
            .iter()
            .filter(|&&i| nodes[i].live)
            .map(|&i| nodes[i].id.as_str())
            .collect();
        for (contact_id, kind, value) in queries::keys_of_contacts(conn, &live, &LINK_KINDS)? {
            if let Some(&node) = index.get(&contact_id) {
                keys.note(node, kind, value);
            }
        }
        let dead: Vec<&str> = reached
            .iter()
            .filter(|&&i| !nodes[i].live)
            .map(|&i| nodes[i].id.as_str())
            .collect();
        for (_, kind, value) in queries::keys_of_contacts(conn, &dead, &LINK_KINDS)? {
            let key = (kind, value);
            if !keys.holders.contains_key(&key) && !keys.new.contains(&key) {
                keys.new.push(key);
            }
        }
        if manual.has_bonds {
            let ids: Vec<&str> = reached.iter().map(|&i| nodes[i].id.as_str()).collect();
            let operations: Vec<String> = identity::operations_bonding(conn, &ids)?
                .into_iter()
                .filter(|op| operations_seen.insert(op.clone()))
                .collect();
            for bond in identity::bonds_of(conn, &operations)? {
                if !index.contains_key(&bond.1) {
                    sharing.push(bond.1.clone());
                }
                bonds.push(bond);
            }
        }
        for kind in LINK_KINDS {
            let values: Vec<&str> = keys
                .new
                .iter()
                .filter(|(k, _)| k == kind)
                .map(|(_, v)| v.as_str())
                .collect();
            let ids = queries::contacts_with_keys(conn, kind, &values)?;
            sharing.extend(ids.into_iter().filter(|id| !index.contains_key(id)));
        }
        keys.new.clear();
    }

    // The region's live contacts in id order, as `link_org` sees them.
    let mut live: Vec<(u128, usize)> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if node.live {
            live.push((ulid_of(&node.id)?, i));
        }
    }
    live.sort_unstable();
    let mut position = vec![usize::MAX; nodes.len()];
    for (pos, &(_, i)) in live.iter().enumerate() {
        position[i] = pos;
    }
    let ids_of: Vec<u128> = live.iter().map(|&(u, _)| u).collect();
    let person_of: Vec<u128> = live
        .iter()
        .map(|&(_, i)| nodes[i].person.as_deref().map(ulid_of).transpose())
        .map(|p| p.map(|p| p.unwrap_or(0)))
        .collect::<Result<_, _>>()?;
    let mut uf = UnionFind::new(live.len());
    uf.bond(
        bonds
            .into_iter()
            .filter_map(|(op, contact, part)| {
                let node = *index.get(&contact)?;
                nodes[node].live.then(|| (op, position[node], part))
            })
            .collect(),
    );
    // Every live holder of each key is in the region (each new key's holders
    // were read), so a key's count here is the org's, as `link_org` counts it.
    // Keys in (kind, value) order and holders in id order, as `link_org` unions
    // them: with a split's apart rule, the order decides which join is refused.
    let mut held: Vec<(&(String, String), Vec<usize>)> = keys
        .holders
        .iter()
        .filter(|((kind, value), holders)| {
            rules.links(holders.len()) && !manual.blocks(kind, value)
        })
        .map(|(key, holders)| {
            let mut at: Vec<usize> = holders.iter().map(|&h| position[h]).collect();
            at.sort_unstable();
            (key, at)
        })
        .collect();
    held.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (_, holders) in held {
        for pair in holders.windows(2) {
            uf.union(pair[0], pair[1]);
        }
    }
    let roots: Vec<u32> = (0..live.len()).map(|i| uf.find(i) as u32).collect();
    let is_incoming: Vec<bool> = live.iter().map(|&(_, i)| i < first_stored).collect();
    let (mut counts, assigned) =
        settle_and_write(conn, org_id, &ids_of, &person_of, &roots, &is_incoming)?;
    let assigned: HashMap<String, String> = assigned
        .into_iter()
        .map(|(pos, person)| {
            (
                nodes[live[pos as usize].1].id.clone(),
                id_of(ids::PERSON, person),
            )
        })
        .collect();
    // Deleted contacts belong to nobody; the region's people left without contacts go.
    let orphaned: Vec<&str> = nodes
        .iter()
        .filter(|n| !n.live && n.person.is_some())
        .map(|n| n.id.as_str())
        .collect();
    queries::unlink_contacts(conn, &orphaned)?;
    let persons: Vec<String> = persons_seen.into_iter().collect();
    let removed = queries::delete_empty_people(conn, org_id, Some(&persons))?;
    counts.people_removed += removed.len();
    counts.changes.removed.extend(removed);
    Ok((counts, assigned))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `settle` with a flush that only records what it was handed.
    #[allow(clippy::type_complexity)]
    fn settle_recorded(
        person_of: &[u128],
        roots: &[u32],
        incoming: &[bool],
    ) -> (
        LinkCounts,
        Vec<(u32, u128)>,
        BTreeSet<u128>,
        Vec<u128>,
        Vec<(u32, u128)>,
    ) {
        let ids_of: Vec<u128> = (1..=person_of.len() as u128).collect();
        let (mut created, mut moved) = (Vec::new(), Vec::new());
        let (counts, assigned, touched) = settle(&ids_of, person_of, roots, incoming, &mut |f| {
            created.extend_from_slice(f.new_people);
            moved.extend_from_slice(f.moves);
            Ok(())
        })
        .expect("pure");
        (counts, assigned, touched, created, moved)
    }

    #[test]
    fn a_group_keeps_the_person_most_of_it_had_and_the_rest_move_to_it() {
        // Contacts 0..3 are one group; two of them were person 7, one person 9.
        let (counts, assigned, touched, created, moved) =
            settle_recorded(&[7, 7, 9], &[0, 0, 0], &[false, false, false]);
        assert_eq!(counts.people, 1);
        assert!(created.is_empty() && assigned.is_empty());
        assert_eq!(moved, vec![(2, 7)]);
        assert_eq!(touched, BTreeSet::from([7, 9]));
        assert_eq!(counts.contacts_moved, 1);
    }

    #[test]
    fn when_a_person_splits_the_bigger_part_keeps_its_id() {
        // Person 5 had four contacts; now 0,1,2 are one group and 3 another.
        let (counts, _, _, created, moved) =
            settle_recorded(&[5, 5, 5, 5], &[0, 0, 0, 3], &[false; 4]);
        assert_eq!(counts.people, 2);
        assert_eq!(created.len(), 1, "the smaller part gets a new person");
        assert_eq!(moved, vec![(3, created[0])]);
    }

    #[test]
    fn incoming_contacts_are_assigned_not_moved_and_new_groups_get_new_people() {
        // 0 is stored (person 4); 1 is incoming in its group; 2 is incoming alone.
        let (counts, assigned, touched, created, moved) =
            settle_recorded(&[4, 0, 0], &[0, 0, 2], &[false, true, true]);
        assert!(moved.is_empty());
        assert_eq!(created.len(), 1);
        assert_eq!(counts.people_created, 1);
        let mut assigned = assigned;
        assigned.sort();
        assert_eq!(assigned, vec![(1, 4), (2, created[0])]);
        assert_eq!(touched, BTreeSet::from([4]));
    }
}
