//! Table definitions shared by both backends. Only portable types (Text, BigInt, Date, Timestamp,
//! and Binary — BLOB on SQLite, BYTEA on PostgreSQL — for encrypted evidence files) appear:
//! diesel's `MultiConnection` supports no others without hand-written glue.

diesel::table! {
    versions (id) {
        id -> Text,
        kind -> Text,
        doc_id -> Text,
        author_node -> Text,
        hlc -> BigInt,
        parents -> Text,
        body -> Text,
        resolution -> BigInt,
        signature -> Nullable<Text>,
        stored_at -> Timestamp,
        second_signature -> Nullable<Text>,
    }
}

diesel::table! {
    version_parents (version_id, parent_id) {
        version_id -> Text,
        parent_id -> Text,
    }
}

diesel::table! {
    heads (kind, doc_id, version_id) {
        kind -> Text,
        doc_id -> Text,
        version_id -> Text,
    }
}

diesel::table! {
    children (id_number) {
        id_number -> Text,
        name -> Text,
        hukou_region -> Text,
        residence_region -> Text,
        categories -> Text,
        risk_level -> Nullable<Text>,
        last_visit_on -> Nullable<Date>,
        refreshed_on -> Nullable<Date>,
        residence_township -> Nullable<Text>,
        hukou_township -> Nullable<Text>,
        visit_due_on -> Nullable<Date>,
        responsible_worker -> Nullable<Text>,
        record -> Text,
        head_count -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// The benefits each child holds now (`sync::view::held_benefits`), kept with `children`.
    child_benefits (id_number, benefit) {
        id_number -> Text,
        benefit -> Text,
    }
}

diesel::joinable!(child_benefits -> children (id_number));
diesel::allow_tables_to_appear_in_same_query!(child_benefits, children);
diesel::allow_columns_to_appear_in_same_group_by_clause!(
    children::hukou_region,
    children::residence_region,
    child_benefits::benefit,
);

diesel::allow_tables_to_appear_in_same_query!(versions, version_parents, heads, children);
diesel::allow_tables_to_appear_in_same_query!(audit_events, audit_nodes, tree_heads);

diesel::table! {
    audit_events (seq) {
        seq -> BigInt,
        hlc -> BigInt,
        at -> Timestamp,
        actor_kind -> Text,
        actor_id -> Text,
        via -> Text,
        action -> Text,
        object_kind -> Nullable<Text>,
        object_id -> Nullable<Text>,
        purpose -> Nullable<Text>,
        outcome -> Text,
        details -> Text,
        details_digest -> Text,
        leaf_hash -> Text,
    }
}

diesel::table! {
    audit_nodes (level, idx) {
        level -> BigInt,
        idx -> BigInt,
        hash -> Text,
    }
}

diesel::table! {
    tree_heads (size) {
        size -> BigInt,
        root -> Text,
        signed_at -> Timestamp,
        public_key -> Text,
        signature -> Text,
        checkpoint -> Nullable<Text>,
    }
}

diesel::table! {
    version_check (name) {
        name -> Text,
        after_id -> Text,
        passes -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    tampered_versions (version_id) {
        version_id -> Text,
        kind -> Text,
        doc_id -> Text,
        found_at -> Timestamp,
    }
}

diesel::table! {
    audit_self_check (name) {
        name -> Text,
        size -> BigInt,
        peaks -> Text,
        checked_at -> Timestamp,
    }
}

diesel::table! {
    witnessed_logs (peer) {
        peer -> Text,
        size -> BigInt,
        root -> Text,
        checkpoint -> Text,
        cosigned_at -> Timestamp,
    }
}

diesel::table! {
    cosignatures (witness, size) {
        witness -> Text,
        size -> BigInt,
        root -> Text,
        line -> Text,
        cosigned_at -> Timestamp,
    }
}

diesel::table! {
    witness_evidence (id) {
        id -> Text,
        peer -> Text,
        kind -> Text,
        detected_at -> Timestamp,
        document -> Text,
        acknowledged_at -> Nullable<Timestamp>,
        acknowledged_by -> Nullable<Text>,
    }
}

diesel::table! {
    outbox (peer, version_id) {
        peer -> Text,
        version_id -> Text,
        hlc -> BigInt,
        enqueued_at -> Timestamp,
    }
}

diesel::table! {
    outbox_rejected (peer, version_id) {
        peer -> Text,
        version_id -> Text,
        code -> Text,
        reason -> Text,
        rejected_at -> Timestamp,
    }
}

diesel::table! {
    receipts (id) {
        id -> Text,
        issuer -> Text,
        recipient -> Text,
        issued_at -> Timestamp,
        accepted -> BigInt,
        rejected -> BigInt,
        body -> Text,
        stored_at -> Timestamp,
    }
}

diesel::table! {
    peer_status (peer) {
        peer -> Text,
        last_success_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        last_error_at -> Nullable<Timestamp>,
        failures -> BigInt,
        delivered -> BigInt,
    }
}

diesel::table! {
    peer_tree_heads (peer, size) {
        peer -> Text,
        size -> BigInt,
        root -> Text,
        signed_at -> Timestamp,
        public_key -> Text,
        signature -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(outbox, versions);

diesel::table! {
    cases (case_id) {
        case_id -> Text,
        child_id -> Text,
        benefit -> Text,
        requester -> Text,
        decider -> Text,
        state -> Text,
        submitted_at -> Timestamp,
        due_on -> Date,
        head_count -> BigInt,
        body -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    visits (visit_id) {
        visit_id -> Text,
        child_id -> Text,
        recorded_by -> Text,
        visited_on -> Date,
        kind -> Text,
        visitor_role -> Text,
        risk_level -> Nullable<Text>,
        next_due_on -> Nullable<Date>,
        head -> Text,
        body -> Text,
        recorded_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    reports (report_id) {
        report_id -> Text,
        child_id -> Text,
        recorded_by -> Text,
        reported_on -> Date,
        reporter_kind -> Text,
        urgent -> BigInt,
        police_called -> BigInt,
        referral_target -> Nullable<Text>,
        head -> Text,
        body -> Text,
        recorded_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    users (username) {
        username -> Text,
        display_name -> Text,
        role -> Text,
        password_hash -> Text,
        failed_logins -> BigInt,
        locked_until -> Nullable<Timestamp>,
        disabled -> BigInt,
        created_at -> Timestamp,
        scope -> Text,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        username -> Text,
        csrf_token -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    api_tokens (name) {
        name -> Text,
        token_hash -> Text,
        role -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        scope -> Text,
    }
}

diesel::table! {
    conflicts (doc_id, field, merge_point) {
        doc_id -> Text,
        field -> Text,
        merge_point -> Text,
        owner -> Text,
        base -> Text,
        candidates -> Text,
        opened_at -> Timestamp,
    }
}

diesel::joinable!(sessions -> users (username));
diesel::allow_tables_to_appear_in_same_query!(users, sessions);
diesel::allow_tables_to_appear_in_same_query!(conflicts, children);
diesel::allow_tables_to_appear_in_same_query!(reports, visits);

diesel::table! {
    recon_dirty (kind, doc_id) {
        kind -> Text,
        doc_id -> Text,
        gen -> BigInt,
    }
}

diesel::table! {
    recon_docs (peer, kind, doc_id) {
        peer -> Text,
        kind -> Text,
        doc_id -> Text,
        bucket -> BigInt,
        heads -> Text,
        leaf -> Text,
    }
}

diesel::table! {
    recon_buckets (peer, bucket) {
        peer -> Text,
        bucket -> BigInt,
        acc -> Text,
        docs -> BigInt,
    }
}

diesel::table! {
    leases (name) {
        name -> Text,
        holder -> Text,
        fence -> BigInt,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    node_meta (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    recon_meta (name) {
        name -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    recon_runs (id) {
        id -> Text,
        peer -> Text,
        started_by -> Text,
        dry_run -> BigInt,
        status -> Text,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        differences -> BigInt,
        report -> Text,
    }
}

diesel::table! {
    recon_locks (peer) {
        peer -> Text,
        run_id -> Text,
        started_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(recon_docs, children);
diesel::allow_tables_to_appear_in_same_query!(recon_docs, versions);

diesel::table! {
    evidence_files (sha256) {
        sha256 -> Text,
        media_type -> Text,
        size -> BigInt,
        nonce -> Binary,
        ciphertext -> Binary,
        stored_at -> Timestamp,
        source_node -> Nullable<Text>,
    }
}

diesel::table! {
    case_evidence (case_id, sha256) {
        case_id -> Text,
        sha256 -> Text,
    }
}

diesel::table! {
    evidence_fetches (sha256) {
        sha256 -> Text,
        peer -> Text,
        outcome -> Text,
        attempts -> BigInt,
        last_attempt_at -> Timestamp,
        detail -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    case_evidence,
    cases,
    evidence_files,
    evidence_fetches
);
