//! Repositories of documents: versions and their parent edges, heads, and the children view.
//! Rows go in as storage's own input types ([`VersionRow`], [`ChildRow`]); the children view
//! comes out typed ([`ChildListing`], [`ChildView`] with the parsed [`ChildRecord`]), and a stored
//! value that does not parse is [`StorageError::Corrupt`].

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{child_benefits, children, heads, version_parents, versions};
use super::{DbConn, StorageError, LIST_CHUNK};
use crate::crypto::hlc::Hlc;
use crate::crypto::keys::Signature;
use crate::domain::digest::Digest;
use crate::domain::{ChildRecord, DocKind, IdNumber, NodeId, RegionCode, RiskLevel, Scope};

/// A stored version (DESIGN §3).
#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = versions)]
#[diesel(treat_none_as_default_value = false)]
pub struct VersionRow {
    pub id: String,
    pub kind: String,
    pub doc_id: String,
    pub author_node: String,
    pub hlc: i64,
    /// JSON array of parent ids, sorted.
    pub parents: String,
    pub body: String,
    /// 1 for a conflict resolution version, else 0.
    pub resolution: i64,
    pub signature: Option<String>,
    pub stored_at: NaiveDateTime,
    /// The author's second signature (of the other suite) during a migration window.
    pub second_signature: Option<String>,
}

/// A stored version as read back, typed. The body stays the stored JSON text, so a sender can
/// pass it through without parsing and writing it again.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVersion {
    pub id: Digest,
    pub kind: DocKind,
    pub doc_id: String,
    pub author_node: NodeId,
    pub hlc: Hlc,
    /// Sorted.
    pub parents: Vec<Digest>,
    /// A conflict resolution version.
    pub resolution: bool,
    pub signature: Signature,
    /// The author's second signature, of the other suite, if it signed twice.
    pub second_signature: Option<Signature>,
    pub body: StoredBody,
    pub stored_at: DateTime<Utc>,
}

/// A version's body as stored: JSON text, not checked here (its readers parse it, or a sender
/// checks it is JSON as it copies it into a request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBody(pub String);

impl StoredBody {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<VersionRow> for StoredVersion {
    type Error = StorageError;

    fn try_from(r: VersionRow) -> Result<Self, StorageError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            StorageError::corrupt("versions", format!("version {}: {what}: {e}", r.id))
        };
        Ok(StoredVersion {
            id: r.id.parse().map_err(|e| bad("id", &e))?,
            kind: r.kind.parse().map_err(|e| bad("kind", &e))?,
            author_node: NodeId::parse(&r.author_node).map_err(|e| bad("author", &e))?,
            hlc: Hlc::from_i64(r.hlc).map_err(|e| bad("hlc", &e))?,
            parents: serde_json::from_str(&r.parents).map_err(|e| bad("parents", &e))?,
            resolution: r.resolution != 0,
            signature: r
                .signature
                .as_deref()
                .ok_or_else(|| bad("signature", &"missing"))?
                .parse()
                .map_err(|e| bad("signature", &e))?,
            second_signature: r
                .second_signature
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| bad("second_signature", &e))?,
            stored_at: r.stored_at.and_utc(),
            doc_id: r.doc_id,
            body: StoredBody(r.body),
        })
    }
}

/// How many stored versions carry a second signature (a migration between suites).
pub fn count_dual_signed(conn: &mut DbConn) -> Result<i64, StorageError> {
    Ok(per_backend!(conn, |c| versions::table
        .filter(versions::second_signature.is_not_null())
        .count()
        .get_result::<i64>(c))?)
}

/// One row of the current view of children.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = children)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(treat_none_as_null = true)]
pub struct ChildRow {
    pub id_number: String,
    pub name: String,
    pub hukou_region: String,
    pub residence_region: String,
    /// `|code|code|`, so one category is found with `LIKE '%|code|%'`.
    pub categories: String,
    /// The risk level on the common scale as `"1"`..`"4"` ([`RiskLevel::as_str`]), never a
    /// local label.
    pub risk_level: Option<String>,
    pub last_visit_on: Option<NaiveDate>,
    /// The later of `last_visit_on` and the record's `info_updated_on`: the six-month rule
    /// compares it (a file without either is stale).
    pub refreshed_on: Option<NaiveDate>,
    /// The record's 9-digit townships, for lists filtered by township.
    pub residence_township: Option<String>,
    pub hukou_township: Option<String>,
    /// When the next visit is due under this node's schedule (`None`: no rule applies).
    pub visit_due_on: Option<NaiveDate>,
    /// The responsible worker's name (包保人), for the due list per worker.
    pub responsible_worker: Option<String>,
    /// The merged record, JSON. Empty when the file's only head is its creation: the view is then
    /// that version's body, and [`get_child`] and [`page_children`] read it from `versions`. An
    /// import or a new file from a peer thus writes the record once, not twice.
    pub record: String,
    pub head_count: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A file's row of the children view as listed: its indexed columns, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildListing {
    pub id_number: IdNumber,
    pub name: String,
    pub hukou_region: RegionCode,
    pub residence_region: RegionCode,
    /// Category codes, in stored order.
    pub categories: Vec<String>,
    pub risk_level: Option<RiskLevel>,
    pub last_visit_on: Option<NaiveDate>,
    /// Heads the view merges (more than one: concurrent edits).
    pub head_count: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A file's row of the children view with its merged record.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildView {
    pub id_number: IdNumber,
    pub name: String,
    pub hukou_region: RegionCode,
    pub residence_region: RegionCode,
    pub head_count: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub record: ChildRecord,
}

fn corrupt_child(id: &str, what: &str, e: &dyn std::fmt::Display) -> StorageError {
    StorageError::corrupt(
        "children",
        format!("{}: {what}: {e}", IdNumber::mask_text(id)),
    )
}

impl TryFrom<ChildRow> for ChildListing {
    type Error = StorageError;

    fn try_from(r: ChildRow) -> Result<Self, StorageError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| corrupt_child(&r.id_number, what, e);
        Ok(ChildListing {
            id_number: IdNumber::parse(&r.id_number).map_err(|e| bad("id number", &e))?,
            hukou_region: RegionCode::parse(&r.hukou_region)
                .map_err(|e| bad("hukou region", &e))?,
            residence_region: RegionCode::parse(&r.residence_region)
                .map_err(|e| bad("residence region", &e))?,
            categories: r
                .categories
                .split('|')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
            head_count: u32::try_from(r.head_count).map_err(|e| bad("head count", &e))?,
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            last_visit_on: r.last_visit_on,
            risk_level: r
                .risk_level
                .as_deref()
                .map(|l| {
                    l.parse::<u8>()
                        .map_err(|e| e.to_string())
                        .and_then(|n| RiskLevel::new(n).map_err(|e| e.to_string()))
                        .map_err(|e| bad("risk level", &e))
                })
                .transpose()?,
            name: r.name,
        })
    }
}

impl TryFrom<ChildRow> for ChildView {
    type Error = StorageError;

    fn try_from(r: ChildRow) -> Result<Self, StorageError> {
        let record: ChildRecord = serde_json::from_str(&r.record)
            .map_err(|e| corrupt_child(&r.id_number, "record", &e))?;
        let l = ChildListing::try_from(r)?;
        Ok(ChildView {
            id_number: l.id_number,
            name: l.name,
            hukou_region: l.hukou_region,
            residence_region: l.residence_region,
            head_count: l.head_count,
            created_at: l.created_at,
            updated_at: l.updated_at,
            record,
        })
    }
}

/// Filters of the children list; every one optional, combined with AND.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ChildFilter {
    /// Hukou or residence region starts with this.
    pub region_prefix: Option<String>,
    pub hukou_prefix: Option<String>,
    pub residence_prefix: Option<String>,
    pub category: Option<String>,
    pub risk_level: Option<RiskLevel>,
    /// The residence or hukou township (9 digits) is this one.
    pub township: Option<String>,
    /// Neither visited nor confirmed since this moment's date (the six-month rule).
    pub stale_before: Option<NaiveDateTime>,
    /// Holds this benefit now (a `Benefit` code).
    pub benefit: Option<String>,
    /// The responsible worker (包保人) is this person.
    pub worker: Option<String>,
    /// The next visit is due on or before this day (overdue ones included).
    pub visit_due_by: Option<NaiveDate>,
    /// Keyset paging: only ID numbers after this one.
    pub after: Option<String>,
    pub limit: i64,
    /// Only children within this account scope (the caller's; the whole node by default).
    #[serde(skip)]
    pub scope: Scope,
}

/// The rows of the `children` row named `alias` within `scope` (`domain::Scope::admits` in
/// SQL): a region prefix matches the hukou or residence region, a township prefix the hukou or
/// residence township. `None` for the whole node. The prefixes are ASCII digits by `Scope`'s
/// invariant and are written into the text (checked again here: a prefix that is not digits
/// matches nothing), so no input reaches the SQL unchecked; as literal prefixes, PostgreSQL
/// answers them from the pattern indexes.
fn scope_sql(alias: &str, scope: &Scope) -> Option<String> {
    if scope.is_whole_node() {
        return None;
    }
    let conditions: Vec<String> = scope
        .prefixes()
        .iter()
        .map(|p| {
            let d = p.as_str();
            if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
                "1 = 0".to_owned()
            } else if p.is_township() {
                format!(
                    "{alias}.residence_township LIKE '{d}%' OR {alias}.hukou_township LIKE '{d}%'"
                )
            } else {
                format!("{alias}.hukou_region LIKE '{d}%' OR {alias}.residence_region LIKE '{d}%'")
            }
        })
        .collect();
    Some(format!("({})", conditions.join(" OR ")))
}

/// For queries of `children`: the rows within `scope` ([`scope_sql`]); `None` for the whole
/// node.
pub(crate) fn scope_condition(
    scope: &Scope,
) -> Option<diesel::expression::SqlLiteral<diesel::sql_types::Bool>> {
    scope_sql("children", scope).map(|c| diesel::dsl::sql::<diesel::sql_types::Bool>(&c))
}

/// For lists of other tables: SQL that holds when the child named by `outer` (a qualified
/// column, e.g. `cases.child_id`) has a view row within `scope` ([`scope_sql`]); `None` for the
/// whole node.
pub(crate) fn scope_exists(
    outer: &'static str,
    scope: &Scope,
) -> Option<diesel::expression::SqlLiteral<diesel::sql_types::Bool>> {
    scope_sql("c", scope).map(|c| {
        diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "EXISTS (SELECT 1 FROM children c WHERE c.id_number = {outer} AND {c})"
        ))
    })
}

/// Inserts versions and their parent edges.
pub fn insert_versions(conn: &mut DbConn, rows: &[VersionRow]) -> Result<(), StorageError> {
    insert_many!(conn, versions::table, rows);
    let mut edges: Vec<(&str, String)> = Vec::with_capacity(rows.len());
    for r in rows {
        let parents = r.parent_ids().map_err(|e| {
            StorageError::corrupt("versions", format!("version {}: parents: {e}", r.id))
        })?;
        edges.extend(parents.into_iter().map(|p| (r.id.as_str(), p)));
    }
    insert_many!(conn, version_parents::table, edges, |e| (
        version_parents::version_id.eq(e.0.to_owned()),
        version_parents::parent_id.eq(e.1.clone()),
    ));
    Ok(())
}

impl VersionRow {
    /// The ids in the `parents` column.
    pub fn parent_ids(&self) -> Result<Vec<String>, serde_json::Error> {
        serde_json::from_str(&self.parents)
    }
}

/// Which of `ids` are stored.
pub fn existing_versions(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<HashSet<String>, StorageError> {
    let mut out = HashSet::new();
    for chunk in ids.chunks(LIST_CHUNK) {
        let found: Vec<String> = match conn {
            DbConn::Postgres(c) => keys_present(c, "versions", "id", chunk)?,
            DbConn::Sqlite(_) => versions::table
                .filter(versions::id.eq_any(chunk))
                .select(versions::id)
                .load(conn)?,
        };
        out.extend(found);
    }
    Ok(out)
}

pub fn get_version(conn: &mut DbConn, id: &str) -> Result<Option<StoredVersion>, StorageError> {
    let row: Option<VersionRow> = versions::table
        .find(id)
        .select(VersionRow::as_select())
        .first(conn)
        .optional()?;
    row.map(StoredVersion::try_from).transpose()
}

/// The stored versions among `ids`, by id (an id not stored is absent): one query per
/// [`LIST_CHUNK`], on PostgreSQL planned with its keys on every call ([`head_versions_of`]). A
/// row that does not parse is its own entry's error, not the read's.
pub fn get_versions(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Result<StoredVersion, StorageError>>, StorageError> {
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(LIST_CHUNK) {
        let rows: Vec<VersionRow> = match conn {
            DbConn::Postgres(pg) => diesel::sql_query(
                "SELECT id, kind, doc_id, author_node, hlc, parents, body, resolution, \
                        signature, stored_at, second_signature \
                 FROM versions WHERE id = ANY($1)",
            )
            .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(chunk)
            .load(pg)?,
            DbConn::Sqlite(_) => versions::table
                .filter(versions::id.eq_any(chunk))
                .select(VersionRow::as_select())
                .load(conn)?,
        };
        for row in rows {
            out.insert(row.id.clone(), StoredVersion::try_from(row));
        }
    }
    Ok(out)
}

/// Every version of a document, oldest first (by HLC, then id for a total order).
pub fn versions_of(
    conn: &mut DbConn,
    kind: &str,
    doc_id: &str,
) -> Result<Vec<StoredVersion>, StorageError> {
    let rows: Vec<VersionRow> = versions::table
        .filter(versions::kind.eq(kind))
        .filter(versions::doc_id.eq(doc_id))
        .order((versions::hlc.asc(), versions::id.asc()))
        .select(VersionRow::as_select())
        .load(conn)?;
    rows.into_iter().map(StoredVersion::try_from).collect()
}

/// Current heads of a document, sorted.
pub fn heads_of(conn: &mut DbConn, kind: &str, doc_id: &str) -> Result<Vec<String>, StorageError> {
    heads::table
        .filter(heads::kind.eq(kind))
        .filter(heads::doc_id.eq(doc_id))
        .order(heads::version_id.asc())
        .select(heads::version_id)
        .load(conn)
        .map_err(StorageError::from)
}

/// The stored versions that are a document's current heads, in the order of their ids (one
/// query: the heads and their versions together).
pub fn head_versions(
    conn: &mut DbConn,
    kind: &str,
    doc_id: &str,
) -> Result<Vec<StoredVersion>, StorageError> {
    let rows: Vec<VersionRow> = heads::table
        .inner_join(versions::table.on(versions::id.eq(heads::version_id)))
        .filter(heads::kind.eq(kind))
        .filter(heads::doc_id.eq(doc_id))
        .order(heads::version_id.asc())
        .select(VersionRow::as_select())
        .load(conn)?;
    rows.into_iter().map(StoredVersion::try_from).collect()
}

/// The head versions of each of `doc_ids` (of `kind`), in one query per [`LIST_CHUNK`]: doc id
/// → its heads in id order (a document without heads is absent). On PostgreSQL planned with its
/// keys on every call, as the other key lookups ([`keys_present`]): a cached generic plan made
/// while the tables were small would scan them.
pub fn head_versions_of(
    conn: &mut DbConn,
    kind: &str,
    doc_ids: &[String],
) -> Result<std::collections::HashMap<String, Vec<StoredVersion>>, StorageError> {
    let mut out: std::collections::HashMap<String, Vec<StoredVersion>> = Default::default();
    for chunk in doc_ids.chunks(LIST_CHUNK) {
        let rows: Vec<VersionRow> = match conn {
            DbConn::Postgres(pg) => diesel::sql_query(
                "SELECT v.id, v.kind, v.doc_id, v.author_node, v.hlc, v.parents, v.body, \
                        v.resolution, v.signature, v.stored_at, v.second_signature \
                 FROM heads h JOIN versions v ON v.id = h.version_id \
                 WHERE h.kind = $1 AND h.doc_id = ANY($2) ORDER BY h.doc_id, h.version_id",
            )
            .bind::<diesel::sql_types::Text, _>(kind)
            .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(chunk)
            .load(pg)?,
            DbConn::Sqlite(_) => heads::table
                .inner_join(versions::table.on(versions::id.eq(heads::version_id)))
                .filter(heads::kind.eq(kind))
                .filter(heads::doc_id.eq_any(chunk))
                .order((heads::doc_id.asc(), heads::version_id.asc()))
                .select(VersionRow::as_select())
                .load(conn)?,
        };
        for row in rows {
            let doc = row.doc_id.clone();
            out.entry(doc)
                .or_default()
                .push(StoredVersion::try_from(row)?);
        }
    }
    Ok(out)
}

/// Moves a document's heads past a newly stored version: its parents stop being heads, it becomes
/// one, and the document is marked dirty for reconciliation — SQLite's part of
/// [`insert_on_parents`]. (A stored version's parents are always stored first, so no stored
/// version can name the new one as a parent.)
fn advance_heads(
    conn: &mut DbConn,
    kind: &str,
    doc_id: &str,
    new_id: &str,
    parents: &[String],
) -> Result<(), StorageError> {
    if !parents.is_empty() {
        diesel::delete(
            heads::table
                .filter(heads::kind.eq(kind))
                .filter(heads::doc_id.eq(doc_id))
                .filter(heads::version_id.eq_any(parents)),
        )
        .execute(conn)?;
    }
    diesel::insert_into(heads::table)
        .values((
            heads::kind.eq(kind),
            heads::doc_id.eq(doc_id),
            heads::version_id.eq(new_id),
        ))
        .execute(conn)?;
    // Every change of heads marks the document for the reconciliation summary.
    super::reconcile::mark_dirty(conn, kind, &[doc_id])?;
    Ok(())
}

/// Stores versions that have no parents (creations) with their heads, the documents marked
/// dirty for reconciliation: [`insert_versions`] and [`insert_heads`] in one. On PostgreSQL one
/// statement whatever the count (the rows as arrays): every statement is a round trip to the
/// server, and a version is stored in nearly every writing transaction.
pub fn insert_creations(conn: &mut DbConn, rows: &[VersionRow]) -> Result<(), StorageError> {
    if rows.is_empty() {
        return Ok(());
    }
    debug_assert!(
        rows.iter().all(|r| r.parents == "[]"),
        "a creation has no parents"
    );
    let DbConn::Postgres(pg) = conn else {
        insert_versions(conn, rows)?;
        let mut by_kind: std::collections::BTreeMap<&str, Vec<(String, String)>> =
            Default::default();
        for r in rows {
            by_kind
                .entry(r.kind.as_str())
                .or_default()
                .push((r.doc_id.clone(), r.id.clone()));
        }
        for (kind, heads) in by_kind {
            insert_heads(conn, kind, &heads)?;
        }
        return Ok(());
    };
    InsertCreations(VersionColumns::of(rows)).execute(pg)?;
    Ok(())
}

/// Stores one version made on `parents` (ids, all stored) and moves its document's heads past
/// them, the document marked dirty: [`insert_versions`] and [`advance_heads`] in one — on
/// PostgreSQL one statement.
pub fn insert_on_parents(
    conn: &mut DbConn,
    row: &VersionRow,
    parents: &[String],
) -> Result<(), StorageError> {
    let DbConn::Postgres(pg) = conn else {
        insert_versions(conn, std::slice::from_ref(row))?;
        return advance_heads(conn, &row.kind, &row.doc_id, &row.id, parents);
    };
    InsertOnParents { row, parents }.execute(pg)?;
    Ok(())
}

/// Stores versions made on parents and moves each document's heads past its version's parents:
/// [`insert_on_parents`] for each `(row, parents)` in order (parents are ids, all stored or
/// earlier in `items`). On PostgreSQL, versions of distinct documents are one statement whatever
/// their count; a list with two of one document (a chain: one statement cannot move heads past a
/// version it inserts) is written one version at a time, in order.
pub fn insert_on_parents_many(
    conn: &mut DbConn,
    items: &[(VersionRow, Vec<String>)],
) -> Result<(), StorageError> {
    let mut docs = std::collections::HashSet::with_capacity(items.len());
    let distinct = items
        .iter()
        .all(|(r, _)| docs.insert((r.kind.as_str(), r.doc_id.as_str())));
    match conn {
        DbConn::Postgres(pg) if distinct && items.len() > 1 => {
            // In document order, so concurrent writers lock the heads they move in one order.
            let mut sorted: Vec<&(VersionRow, Vec<String>)> = items.iter().collect();
            sorted
                .sort_unstable_by(|(a, _), (b, _)| (&a.kind, &a.doc_id).cmp(&(&b.kind, &b.doc_id)));
            for chunk in sorted.chunks(LIST_CHUNK) {
                let mut edges = ParentEdges::default();
                for (r, ps) in chunk.iter().copied() {
                    for p in ps {
                        edges.version.push(r.id.as_str());
                        edges.kind.push(r.kind.as_str());
                        edges.doc_id.push(r.doc_id.as_str());
                        edges.parent.push(p.as_str());
                    }
                }
                InsertOnParentsMany {
                    rows: VersionColumns::of(chunk.iter().map(|(r, _)| r)),
                    edges,
                }
                .execute(pg)?;
            }
        }
        _ => {
            for (row, parents) in items {
                insert_on_parents(conn, row, parents)?;
            }
        }
    }
    Ok(())
}

/// The parent edges of versions as arrays: version, its document, one parent.
#[derive(Default)]
struct ParentEdges<'a> {
    version: Vec<&'a str>,
    kind: Vec<&'a str>,
    doc_id: Vec<&'a str>,
    parent: Vec<&'a str>,
}

/// [`insert_on_parents_many`] on PostgreSQL: the versions from arrays, their parent edges, their
/// documents' heads moved past their parents, and the dirty marks sorted and unique.
struct InsertOnParentsMany<'a> {
    rows: VersionColumns<'a>,
    edges: ParentEdges<'a>,
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for InsertOnParentsMany<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        use diesel::sql_types::{Array, Text};
        let (c, e) = (&self.rows, &self.edges);
        out.push_sql("WITH e AS (SELECT * FROM unnest(");
        push_binds!(out;
            Array<Text> => &e.version,
            Array<Text> => &e.kind,
            Array<Text> => &e.doc_id,
            Array<Text> => &e.parent,
        );
        out.push_sql(") AS e (version_id, kind, doc_id, parent_id)), v AS (");
        c.walk_insert(&mut out)?;
        out.push_sql(
            "), \
             p AS (INSERT INTO version_parents (version_id, parent_id) \
                   SELECT e.version_id, e.parent_id FROM e JOIN v ON v.id = e.version_id), \
             d AS (DELETE FROM heads USING e WHERE heads.kind = e.kind \
                   AND heads.doc_id = e.doc_id AND heads.version_id = e.parent_id), \
             h AS (INSERT INTO heads (kind, doc_id, version_id) SELECT kind, doc_id, id FROM v) \
             INSERT INTO recon_dirty (kind, doc_id, gen) \
             SELECT kind, doc_id, 1::int8 FROM v ORDER BY kind, doc_id \
             ON CONFLICT (kind, doc_id) DO UPDATE SET gen = recon_dirty.gen + 1",
        );
        Ok(())
    }
}
pg_cached_statement!(InsertOnParentsMany);

/// The columns of version rows as arrays, in the table's order.
struct VersionColumns<'a> {
    id: Vec<&'a str>,
    kind: Vec<&'a str>,
    doc_id: Vec<&'a str>,
    author_node: Vec<&'a str>,
    hlc: Vec<i64>,
    parents: Vec<&'a str>,
    body: Vec<&'a str>,
    resolution: Vec<i64>,
    signature: Vec<Option<&'a str>>,
    stored_at: Vec<NaiveDateTime>,
    second_signature: Vec<Option<&'a str>>,
}

impl<'a> VersionColumns<'a> {
    fn of(rows: impl IntoIterator<Item = &'a VersionRow>) -> Self {
        let mut c = VersionColumns {
            id: Vec::new(),
            kind: Vec::new(),
            doc_id: Vec::new(),
            author_node: Vec::new(),
            hlc: Vec::new(),
            parents: Vec::new(),
            body: Vec::new(),
            resolution: Vec::new(),
            signature: Vec::new(),
            stored_at: Vec::new(),
            second_signature: Vec::new(),
        };
        for r in rows {
            c.id.push(r.id.as_str());
            c.kind.push(r.kind.as_str());
            c.doc_id.push(r.doc_id.as_str());
            c.author_node.push(r.author_node.as_str());
            c.hlc.push(r.hlc);
            c.parents.push(r.parents.as_str());
            c.body.push(r.body.as_str());
            c.resolution.push(r.resolution);
            c.signature.push(r.signature.as_deref());
            c.stored_at.push(r.stored_at);
            c.second_signature.push(r.second_signature.as_deref());
        }
        c
    }
}

impl VersionColumns<'_> {
    /// `INSERT INTO versions … SELECT * FROM unnest(…) RETURNING kind, doc_id, id`: the rows
    /// from their columns bound as arrays (the body of a statement's first CTE).
    fn walk_insert<'b>(
        &'b self,
        out: &mut diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
        let c = self;
        out.push_sql(
            "INSERT INTO versions (id, kind, doc_id, author_node, hlc, parents, body, \
                                   resolution, signature, stored_at, second_signature) \
             SELECT * FROM unnest(",
        );
        push_binds!(out;
            Array<Text> => &c.id,
            Array<Text> => &c.kind,
            Array<Text> => &c.doc_id,
            Array<Text> => &c.author_node,
            Array<BigInt> => &c.hlc,
            Array<Text> => &c.parents,
            Array<Text> => &c.body,
            Array<BigInt> => &c.resolution,
            Array<Nullable<Text>> => &c.signature,
            Array<Timestamp> => &c.stored_at,
            Array<Nullable<Text>> => &c.second_signature,
        );
        out.push_sql(") RETURNING kind, doc_id, id");
        Ok(())
    }
}

/// [`insert_creations`] on PostgreSQL: the versions from arrays, their heads, and the dirty
/// marks sorted and unique (an upsert may not touch a row twice, and one order keeps
/// concurrent writers from deadlocking).
struct InsertCreations<'a>(VersionColumns<'a>);

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for InsertCreations<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        let c = &self.0;
        out.push_sql("WITH v AS (");
        c.walk_insert(&mut out)?;
        out.push_sql(
            "), \
             h AS (INSERT INTO heads (kind, doc_id, version_id) SELECT kind, doc_id, id FROM v) \
             INSERT INTO recon_dirty (kind, doc_id, gen) \
             SELECT DISTINCT kind, doc_id, 1::int8 FROM v ORDER BY kind, doc_id \
             ON CONFLICT (kind, doc_id) DO UPDATE SET gen = recon_dirty.gen + 1",
        );
        Ok(())
    }
}
pg_cached_statement!(InsertCreations);

/// [`insert_on_parents`] on PostgreSQL: the version, its parent edges, its document's heads
/// moved past its parents, and the document's dirty mark — each value bound once (`a`).
struct InsertOnParents<'a> {
    row: &'a VersionRow,
    parents: &'a [String],
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for InsertOnParents<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
        let r = self.row;
        out.push_sql("WITH a AS (SELECT ");
        out.push_bind_param::<Text, _>(&r.id)?;
        out.push_sql("::text AS id, ");
        out.push_bind_param::<Text, _>(&r.kind)?;
        out.push_sql("::text AS kind, ");
        out.push_bind_param::<Text, _>(&r.doc_id)?;
        out.push_sql("::text AS doc_id, ");
        out.push_bind_param::<Array<Text>, _>(self.parents)?;
        out.push_sql(
            "::text[] AS parents), \
             v AS (INSERT INTO versions (id, kind, doc_id, author_node, hlc, parents, body, \
                   resolution, signature, stored_at, second_signature) \
                   SELECT a.id, a.kind, a.doc_id, ",
        );
        out.push_bind_param::<Text, _>(&r.author_node)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&r.hlc)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&r.parents)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&r.body)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&r.resolution)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&r.signature)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&r.stored_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&r.second_signature)?;
        out.push_sql(
            " FROM a), \
             p AS (INSERT INTO version_parents (version_id, parent_id) \
                   SELECT a.id, unnest(a.parents) FROM a), \
             d AS (DELETE FROM heads USING a WHERE heads.kind = a.kind \
                   AND heads.doc_id = a.doc_id AND heads.version_id = ANY(a.parents)), \
             h AS (INSERT INTO heads (kind, doc_id, version_id) SELECT a.kind, a.doc_id, a.id FROM a) \
             INSERT INTO recon_dirty (kind, doc_id, gen) SELECT a.kind, a.doc_id, 1 FROM a \
             ON CONFLICT (kind, doc_id) DO UPDATE SET gen = recon_dirty.gen + 1",
        );
        Ok(())
    }
}
pg_cached_statement!(InsertOnParents);

/// Heads of many new documents at once (bulk import of creations), marked dirty for
/// reconciliation: SQLite's part of [`insert_creations`], whose deferred foreign key checks each
/// at COMMIT. (On PostgreSQL heads are written only with their versions, by one statement.)
fn insert_heads(
    conn: &mut DbConn,
    kind: &str,
    rows: &[(String, String)],
) -> Result<(), StorageError> {
    insert_many!(conn, heads::table, rows, |r| (
        heads::kind.eq(kind.to_owned()),
        heads::doc_id.eq(r.0.clone()),
        heads::version_id.eq(r.1.clone()),
    ));
    let docs: Vec<&str> = rows.iter().map(|(doc, _)| doc.as_str()).collect();
    super::reconcile::mark_dirty(conn, kind, &docs)?;
    Ok(())
}

/// Stores new files' view rows. On PostgreSQL one statement whatever the count (the rows as
/// arrays: 16 binds instead of 16 per row, one plan); on SQLite multi-row inserts.
pub fn insert_children(conn: &mut DbConn, rows: &[ChildRow]) -> Result<(), StorageError> {
    if rows.is_empty() {
        return Ok(());
    }
    let DbConn::Postgres(pg) = conn else {
        insert_many!(conn, children::table, rows);
        return Ok(());
    };
    InsertChildren(ChildColumns::of(rows)).execute(pg)?;
    Ok(())
}

/// The columns of view rows as arrays, in the table's order.
struct ChildColumns<'a> {
    id_number: Vec<&'a str>,
    name: Vec<&'a str>,
    hukou_region: Vec<&'a str>,
    residence_region: Vec<&'a str>,
    categories: Vec<&'a str>,
    risk_level: Vec<Option<&'a str>>,
    last_visit_on: Vec<Option<NaiveDate>>,
    refreshed_on: Vec<Option<NaiveDate>>,
    residence_township: Vec<Option<&'a str>>,
    hukou_township: Vec<Option<&'a str>>,
    visit_due_on: Vec<Option<NaiveDate>>,
    responsible_worker: Vec<Option<&'a str>>,
    record: Vec<&'a str>,
    head_count: Vec<i64>,
    created_at: Vec<NaiveDateTime>,
    updated_at: Vec<NaiveDateTime>,
}

impl<'a> ChildColumns<'a> {
    fn of(rows: &'a [ChildRow]) -> Self {
        ChildColumns {
            id_number: rows.iter().map(|r| r.id_number.as_str()).collect(),
            name: rows.iter().map(|r| r.name.as_str()).collect(),
            hukou_region: rows.iter().map(|r| r.hukou_region.as_str()).collect(),
            residence_region: rows.iter().map(|r| r.residence_region.as_str()).collect(),
            categories: rows.iter().map(|r| r.categories.as_str()).collect(),
            risk_level: rows.iter().map(|r| r.risk_level.as_deref()).collect(),
            last_visit_on: rows.iter().map(|r| r.last_visit_on).collect(),
            refreshed_on: rows.iter().map(|r| r.refreshed_on).collect(),
            residence_township: rows
                .iter()
                .map(|r| r.residence_township.as_deref())
                .collect(),
            hukou_township: rows.iter().map(|r| r.hukou_township.as_deref()).collect(),
            visit_due_on: rows.iter().map(|r| r.visit_due_on).collect(),
            responsible_worker: rows
                .iter()
                .map(|r| r.responsible_worker.as_deref())
                .collect(),
            record: rows.iter().map(|r| r.record.as_str()).collect(),
            head_count: rows.iter().map(|r| r.head_count).collect(),
            created_at: rows.iter().map(|r| r.created_at).collect(),
            updated_at: rows.iter().map(|r| r.updated_at).collect(),
        }
    }
}

/// [`insert_children`] on PostgreSQL: the rows from arrays.
struct InsertChildren<'a>(ChildColumns<'a>);

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for InsertChildren<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Date, Nullable, Text, Timestamp};
        let c = &self.0;
        out.push_sql(
            "INSERT INTO children (id_number, name, hukou_region, residence_region, categories, \
             risk_level, last_visit_on, refreshed_on, residence_township, hukou_township, \
             visit_due_on, responsible_worker, record, head_count, created_at, updated_at) \
             SELECT * FROM unnest(",
        );
        push_binds!(out;
            Array<Text> => &c.id_number,
            Array<Text> => &c.name,
            Array<Text> => &c.hukou_region,
            Array<Text> => &c.residence_region,
            Array<Text> => &c.categories,
            Array<Nullable<Text>> => &c.risk_level,
            Array<Nullable<Date>> => &c.last_visit_on,
            Array<Nullable<Date>> => &c.refreshed_on,
            Array<Nullable<Text>> => &c.residence_township,
            Array<Nullable<Text>> => &c.hukou_township,
            Array<Nullable<Date>> => &c.visit_due_on,
            Array<Nullable<Text>> => &c.responsible_worker,
            Array<Text> => &c.record,
            Array<BigInt> => &c.head_count,
            Array<Timestamp> => &c.created_at,
            Array<Timestamp> => &c.updated_at,
        );
        out.push_sql(")");
        Ok(())
    }
}
pg_cached_statement!(InsertChildren);

pub fn update_child(conn: &mut DbConn, row: &ChildRow) -> Result<(), StorageError> {
    diesel::update(children::table.find(&row.id_number))
        .set(row)
        .execute(conn)?;
    Ok(())
}

/// A file's view row, with its record.
///
/// One query: a row stored without its record (a file whose only head is its creation) comes
/// with that head's body, joined only for such a row ([`fill_records`] for one file).
pub fn get_child(conn: &mut DbConn, id_number: &str) -> Result<Option<ChildView>, StorageError> {
    let found: Option<(ChildRow, Option<String>)> = children::table
        .left_join(
            heads::table.on(heads::kind
                .eq("child")
                .and(heads::doc_id.eq(children::id_number))
                .and(children::record.eq(""))),
        )
        .left_join(versions::table.on(versions::id.eq(heads::version_id)))
        .filter(children::id_number.eq(id_number))
        .select((ChildRow::as_select(), versions::body.nullable()))
        .first(conn)
        .optional()?;
    let Some((mut row, body)) = found else {
        return Ok(None);
    };
    if row.record.is_empty() {
        if let Some(body) = body {
            row.record = body;
        }
    }
    ChildView::try_from(row).map(Some)
}

/// Whether the file `id_number` is within `scope` (`None`: no such file), from its view row.
pub fn child_in_scope(
    conn: &mut DbConn,
    id_number: &str,
    scope: &Scope,
) -> Result<Option<bool>, StorageError> {
    let row: Option<(String, String, Option<String>, Option<String>)> = children::table
        .find(id_number)
        .select((
            children::hukou_region,
            children::residence_region,
            children::hukou_township,
            children::residence_township,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(h, r, ht, rt)| scope.admits(&h, &r, ht.as_deref(), rt.as_deref())))
}

/// Replaces the benefits a file holds (`child_benefits`) with `benefits` (codes).
pub fn set_benefits(
    conn: &mut DbConn,
    id_number: &str,
    benefits: &[&str],
) -> Result<(), StorageError> {
    diesel::delete(child_benefits::table.filter(child_benefits::id_number.eq(id_number)))
        .execute(conn)?;
    let pairs: Vec<(&str, &str)> = benefits.iter().map(|b| (id_number, *b)).collect();
    insert_benefits(conn, &pairs)
}

/// Adds `(ID number, benefit code)` rows for new files.
pub fn insert_benefits(conn: &mut DbConn, pairs: &[(&str, &str)]) -> Result<(), StorageError> {
    insert_many!(conn, child_benefits::table, pairs, |p| (
        child_benefits::id_number.eq(p.0.to_owned()),
        child_benefits::benefit.eq(p.1.to_owned()),
    ));
    Ok(())
}

/// When a file's view row was created, if it exists.
pub fn child_created_at(
    conn: &mut DbConn,
    id_number: &str,
) -> Result<Option<DateTime<Utc>>, StorageError> {
    let at: Option<NaiveDateTime> = children::table
        .find(id_number)
        .select(children::created_at)
        .first(conn)
        .optional()?;
    Ok(at.map(|t| t.and_utc()))
}

/// Reads the record of each row stored without one (a file whose only head is its creation)
/// from that head's body. A row left without a record after this is corrupt, and its readers say
/// so.
fn fill_records(conn: &mut DbConn, rows: &mut [ChildRow]) -> Result<(), StorageError> {
    let missing: Vec<&str> = rows
        .iter()
        .filter(|r| r.record.is_empty())
        .map(|r| r.id_number.as_str())
        .collect();
    let mut bodies = std::collections::HashMap::with_capacity(missing.len());
    for chunk in missing.chunks(LIST_CHUNK) {
        let found: Vec<(String, String)> = heads::table
            .inner_join(versions::table.on(versions::id.eq(heads::version_id)))
            .filter(heads::kind.eq("child"))
            .filter(heads::doc_id.eq_any(chunk))
            .select((heads::doc_id, versions::body))
            .load(conn)?;
        bodies.extend(found);
    }
    for row in rows.iter_mut().filter(|r| r.record.is_empty()) {
        if let Some(body) = bodies.remove(&row.id_number) {
            row.record = body;
        }
    }
    Ok(())
}

/// Which of `ids` have a child row.
pub fn existing_children(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<HashSet<String>, StorageError> {
    let mut out = HashSet::new();
    for chunk in ids.chunks(LIST_CHUNK) {
        let found: Vec<String> = match conn {
            DbConn::Postgres(c) => keys_present(c, "children", "id_number", chunk)?,
            DbConn::Sqlite(_) => children::table
                .filter(children::id_number.eq_any(chunk))
                .select(children::id_number)
                .load(conn)?,
        };
        out.extend(found);
    }
    Ok(out)
}

/// Which of `keys` are in `table`'s primary key `column`, on PostgreSQL, planned for these keys
/// each time. A cached statement gets a generic plan after five runs; planned while a new
/// node's table was nearly empty, that plan is a sequential scan comparing every row with each
/// of the (up to 500) keys — on a table filled since, 100 ms a call where an index lookup takes
/// 1 ms (measured in `bench sync` on PostgreSQL). A statement planned with its keys uses the
/// table's current size and the primary key.
fn keys_present(
    c: &mut diesel::PgConnection,
    table: &'static str,
    column: &'static str,
    keys: &[String],
) -> Result<Vec<String>, StorageError> {
    keys_present_with(c, table, column, keys, "")
}

/// [`keys_present`] with `tail` after the condition (an order, a row lock).
fn keys_present_with(
    c: &mut diesel::PgConnection,
    table: &'static str,
    column: &'static str,
    keys: &[String],
    tail: &'static str,
) -> Result<Vec<String>, StorageError> {
    #[derive(diesel::QueryableByName)]
    struct Key {
        #[diesel(sql_type = diesel::sql_types::Text)]
        key: String,
    }
    let rows: Vec<Key> = diesel::sql_query(format!(
        "SELECT {column} AS key FROM {table} WHERE {column} = ANY($1){tail}"
    ))
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(keys)
    .load(c)?;
    Ok(rows.into_iter().map(|k| k.key).collect())
}

/// The files `f` selects, in ID order: lists show the indexed columns only.
pub fn list_children(
    conn: &mut DbConn,
    f: &ChildFilter,
) -> Result<Vec<ChildListing>, StorageError> {
    list_rows(conn, f)?
        .into_iter()
        .map(ChildListing::try_from)
        .collect()
}

/// The rows `f` selects, in ID order. Their `record` may be empty (see [`ChildRow::record`]).
fn list_rows(conn: &mut DbConn, f: &ChildFilter) -> Result<Vec<ChildRow>, StorageError> {
    let mut q = children::table.select(ChildRow::as_select()).into_boxed();
    if let Some(c) = scope_condition(&f.scope) {
        q = q.filter(c);
    }
    if let Some(p) = &f.region_prefix {
        let pat = format!("{p}%");
        q = q.filter(
            children::hukou_region
                .like(pat.clone())
                .or(children::residence_region.like(pat)),
        );
    }
    if let Some(p) = &f.hukou_prefix {
        q = q.filter(children::hukou_region.like(format!("{p}%")));
    }
    if let Some(p) = &f.residence_prefix {
        q = q.filter(children::residence_region.like(format!("{p}%")));
    }
    if let Some(c) = &f.category {
        q = q.filter(children::categories.like(format!("%|{c}|%")));
    }
    if let Some(r) = &f.risk_level {
        q = q.filter(children::risk_level.eq(r.as_str()));
    }
    if let Some(t) = &f.township {
        q = q.filter(
            children::residence_township
                .eq(t.clone())
                .or(children::hukou_township.eq(t.clone())),
        );
    }
    if let Some(t) = f.stale_before {
        q = q.filter(
            children::refreshed_on
                .is_null()
                .or(children::refreshed_on.lt(t.date())),
        );
    }
    if let Some(b) = &f.benefit {
        q = q.filter(
            children::id_number.eq_any(
                child_benefits::table
                    .filter(child_benefits::benefit.eq(b.clone()))
                    .select(child_benefits::id_number),
            ),
        );
    }
    if let Some(w) = &f.worker {
        q = q.filter(children::responsible_worker.eq(w.clone()));
    }
    if let Some(d) = f.visit_due_by {
        q = q.filter(children::visit_due_on.le(d));
    }
    if let Some(a) = &f.after {
        q = q.filter(children::id_number.gt(a.clone()));
    }
    q.order(children::id_number.asc())
        .limit(f.limit)
        .load(conn)
        .map_err(StorageError::from)
}

/// Every child row in ID order with its record, one page at a time (export).
pub fn page_children(
    conn: &mut DbConn,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ChildView>, StorageError> {
    let mut rows = list_rows(
        conn,
        &ChildFilter {
            after: after.map(str::to_owned),
            limit,
            ..ChildFilter::default()
        },
    )?;
    fill_records(conn, &mut rows)?;
    rows.into_iter().map(ChildView::try_from).collect()
}

pub fn count_children(conn: &mut DbConn) -> Result<i64, StorageError> {
    children::table
        .count()
        .get_result(conn)
        .map_err(StorageError::from)
}

pub fn max_hlc(conn: &mut DbConn) -> Result<Option<i64>, StorageError> {
    versions::table
        .select(diesel::dsl::max(versions::hlc))
        .first(conn)
        .map_err(StorageError::from)
}

/// Locks the files of `ids` (their `children` rows) until the caller's transaction ends, in
/// sorted order, on PostgreSQL: the writers of one file — an edit, a resolution, a received
/// batch — read its heads and write its view one at a time, across every process of the node.
/// (Without it two writers that read the same heads would each write a view of half the file.)
/// Row locks, not advisory locks: a batch of thousands of files takes no lock-table slots.
/// SQLite's IMMEDIATE transactions already write one at a time: nothing to do there.
pub fn lock_children(conn: &mut DbConn, ids: &[&str]) -> Result<(), StorageError> {
    let DbConn::Postgres(pg) = conn else {
        return Ok(());
    };
    for chunk in ids.chunks(super::LIST_CHUNK) {
        let keys: Vec<String> = chunk.iter().map(|s| (*s).to_owned()).collect();
        // Planned for these keys each time, as [`keys_present`] says why.
        keys_present_with(pg, "children", "id_number", &keys, " ORDER BY 1 FOR UPDATE")?;
    }
    Ok(())
}

/// The largest stamp among the versions `ids` (`None` if none is stored).
pub fn max_hlc_of(conn: &mut DbConn, ids: &[String]) -> Result<Option<i64>, StorageError> {
    if ids.is_empty() {
        return Ok(None);
    }
    versions::table
        .filter(versions::id.eq_any(ids))
        .select(diesel::dsl::max(versions::hlc))
        .first(conn)
        .map_err(StorageError::from)
}

pub fn count_versions(conn: &mut DbConn) -> Result<i64, StorageError> {
    versions::table
        .count()
        .get_result(conn)
        .map_err(StorageError::from)
}

/// Files whose current view merges more than `n` heads.
pub fn count_children_with_heads_over(conn: &mut DbConn, n: i64) -> Result<i64, StorageError> {
    children::table
        .filter(children::head_count.gt(n))
        .count()
        .get_result(conn)
        .map_err(StorageError::from)
}

/// Files with a risk level, counted per level and pair of regions (so the caller can keep the
/// files its node serves): `(level, hukou_region, residence_region, count)`.
pub fn count_risk_by_regions(
    conn: &mut DbConn,
) -> Result<Vec<(RiskLevel, RegionCode, RegionCode, i64)>, StorageError> {
    let rows: Vec<(Option<String>, String, String, i64)> = children::table
        .filter(children::risk_level.is_not_null())
        .group_by((
            children::risk_level,
            children::hukou_region,
            children::residence_region,
        ))
        .select((
            children::risk_level,
            children::hukou_region,
            children::residence_region,
            diesel::dsl::count_star(),
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(level, hukou, residence, n)| {
            let bad = |what: &str, e: &dyn std::fmt::Display| {
                StorageError::corrupt("children", format!("{what}: {e}"))
            };
            let level = level
                .as_deref()
                .unwrap_or_default()
                .parse::<u8>()
                .map_err(|e| e.to_string())
                .and_then(|n| RiskLevel::new(n).map_err(|e| e.to_string()))
                .map_err(|e| bad("risk level", &e))?;
            Ok((
                level,
                RegionCode::parse(&hukou).map_err(|e| bad("hukou region", &e))?,
                RegionCode::parse(&residence).map_err(|e| bad("residence region", &e))?,
                n,
            ))
        })
        .collect()
}

/// Versions in id order after `after` (keyset), at most `limit`: the integrity job's pages.
pub fn versions_after(
    conn: &mut DbConn,
    after: &str,
    limit: i64,
) -> Result<Vec<StoredVersion>, StorageError> {
    let rows: Vec<VersionRow> = versions::table
        .filter(versions::id.gt(after))
        .order(versions::id.asc())
        .limit(limit)
        .select(VersionRow::as_select())
        .load(conn)?;
    rows.into_iter().map(StoredVersion::try_from).collect()
}

/// Where the integrity job is: `(after_id, passes)`.
pub fn version_check_position(conn: &mut DbConn) -> Result<(String, i64), StorageError> {
    use super::schema::version_check;
    Ok(version_check::table
        .find("versions")
        .select((version_check::after_id, version_check::passes))
        .first(conn)
        .optional()?
        .unwrap_or_default())
}

pub fn set_version_check_position(
    conn: &mut DbConn,
    after: &str,
    passes: i64,
    at: NaiveDateTime,
) -> Result<(), StorageError> {
    use super::schema::version_check;
    per_backend!(conn, |c| diesel::insert_into(version_check::table)
        .values((
            version_check::name.eq("versions"),
            version_check::after_id.eq(after),
            version_check::passes.eq(passes),
            version_check::updated_at.eq(at),
        ))
        .on_conflict(version_check::name)
        .do_update()
        .set((
            version_check::after_id.eq(after),
            version_check::passes.eq(passes),
            version_check::updated_at.eq(at),
        ))
        .execute(c))?;
    Ok(())
}

/// Records a version whose body no longer hashes to its id; false if already recorded.
pub fn insert_tampered(
    conn: &mut DbConn,
    version_id: &str,
    kind: &str,
    doc_id: &str,
    at: NaiveDateTime,
) -> Result<bool, StorageError> {
    use super::schema::tampered_versions;
    let n = per_backend!(conn, |c| diesel::insert_into(tampered_versions::table)
        .values((
            tampered_versions::version_id.eq(version_id),
            tampered_versions::kind.eq(kind),
            tampered_versions::doc_id.eq(doc_id),
            tampered_versions::found_at.eq(at),
        ))
        .on_conflict(tampered_versions::version_id)
        .do_nothing()
        .execute(c))?;
    Ok(n > 0)
}

/// Documents of `kind` with a tampered version.
pub fn tampered_docs(conn: &mut DbConn, kind: &str) -> Result<Vec<String>, StorageError> {
    use super::schema::tampered_versions;
    tampered_versions::table
        .filter(tampered_versions::kind.eq(kind))
        .select(tampered_versions::doc_id)
        .distinct()
        .load(conn)
        .map_err(StorageError::from)
}

/// How many versions are recorded as tampered.
pub fn count_tampered(conn: &mut DbConn) -> Result<i64, StorageError> {
    use super::schema::tampered_versions;
    tampered_versions::table
        .count()
        .get_result(conn)
        .map_err(StorageError::from)
}

/// ID numbers of files whose child was born on or before `born_by` (the birth date the ID number
/// states: its characters 7 to 14, `YYYYMMDD`), in ID order after `after`: the adults the
/// age-out job looks at.
pub fn born_by(
    conn: &mut DbConn,
    born_by: NaiveDate,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, StorageError> {
    use diesel::sql_types::{Bool, Text};
    let mut q = children::table
        .select(children::id_number)
        .filter(
            diesel::dsl::sql::<Bool>("substr(id_number, 7, 8) <= ")
                .bind::<Text, _>(born_by.format("%Y%m%d").to_string()),
        )
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(children::id_number.gt(a.to_owned()));
    }
    Ok(q.order(children::id_number.asc()).limit(limit).load(conn)?)
}
