//! The diesel schema, one for both backends: only types SQLite and PostgreSQL share.

diesel::table! {
    orgs (id) {
        id -> Text,
        name -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        org_id -> Text,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        scopes -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    connections (id) {
        id -> Text,
        org_id -> Text,
        provider -> Text,
        name -> Text,
        base_url -> Text,
        credentials -> Text,
        settings -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(api_keys -> orgs (org_id));
diesel::joinable!(connections -> orgs (org_id));

diesel::table! {
    contacts (id) {
        id -> Text,
        org_id -> Text,
        connection_id -> Text,
        provider -> Text,
        remote_id -> Text,
        person_id -> Nullable<Text>,
        search_text -> Text,
        record -> Text,
        remote_data -> Nullable<Text>,
        content_hash -> Text,
        remote_updated_at -> Nullable<Timestamp>,
        fetched_at -> Timestamp,
        remote_was_deleted -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        list_hash -> Nullable<Text>,
    }
}

diesel::table! {
    contact_keys (contact_id, kind, value) {
        contact_id -> Text,
        kind -> Text,
        value -> Text,
    }
}

diesel::table! {
    sync_runs (id) {
        id -> Text,
        org_id -> Text,
        connection_id -> Text,
        trigger_kind -> Text,
        status -> Text,
        created -> BigInt,
        updated -> BigInt,
        unchanged -> BigInt,
        deleted -> BigInt,
        pages -> BigInt,
        upstream_requests -> BigInt,
        throttled_429 -> BigInt,
        limiter_wait_ms -> BigInt,
        error -> Nullable<Text>,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        deletions_held -> BigInt,
        suppressed -> BigInt,
    }
}

diesel::table! {
    deletion_holds (run_id) {
        run_id -> Text,
        org_id -> Text,
        connection_id -> Text,
        state -> Text,
        held -> BigInt,
        since -> Timestamp,
        reason -> Text,
        resolved_at -> Nullable<Timestamp>,
        resolved_by -> Nullable<Text>,
        applied -> Nullable<BigInt>,
    }
}

diesel::table! {
    held_deletions (connection_id, contact_id) {
        connection_id -> Text,
        contact_id -> Text,
        run_id -> Text,
    }
}

diesel::table! {
    sync_leases (connection_id) {
        connection_id -> Text,
        run_id -> Text,
        holder -> Text,
        expires_at -> Timestamp,
        cancel_requested -> Bool,
    }
}

diesel::table! {
    connection_status (connection_id) {
        connection_id -> Text,
        sync_paused -> Bool,
        credentials_verified_at -> Nullable<Timestamp>,
        last_error_kind -> Nullable<Text>,
        last_error_message -> Nullable<Text>,
        last_error_at -> Nullable<Timestamp>,
        error_count -> BigInt,
        last_success_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    chat_groups (connection_id, chat_id) {
        connection_id -> Text,
        chat_id -> Text,
        version -> Text,
        members -> Text,
        seen_run -> Text,
    }
}

diesel::table! {
    sync_seen (run_id, remote_id) {
        run_id -> Text,
        remote_id -> Text,
    }
}

diesel::table! {
    people (id) {
        id -> Text,
        org_id -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    idempotency_keys (org_id, idem_key) {
        org_id -> Text,
        idem_key -> Text,
        fingerprint -> Text,
        state -> Text,
        locked_until -> Timestamp,
        status -> Nullable<Integer>,
        location -> Nullable<Text>,
        content_type -> Nullable<Text>,
        body -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        org_id -> Text,
        at -> Timestamp,
        api_key_id -> Nullable<Text>,
        api_key_prefix -> Nullable<Text>,
        action -> Text,
        target_ids -> Text,
        provider -> Nullable<Text>,
        status -> Integer,
        request_id -> Text,
    }
}

diesel::joinable!(contacts -> connections (connection_id));
diesel::joinable!(sync_runs -> connections (connection_id));
diesel::joinable!(contact_keys -> contacts (contact_id));
diesel::joinable!(identity_operation_contacts -> identity_operations (operation_id));
diesel::table! {
    events (org_id, seq) {
        org_id -> Text,
        seq -> BigInt,
        event_type -> Text,
        occurred_at -> Timestamp,
        connection_id -> Nullable<Text>,
        data -> Text,
    }
}

diesel::table! {
    event_counters (org_id) {
        org_id -> Text,
        last_seq -> BigInt,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        org_id -> Text,
        url -> Text,
        event_types -> Text,
        enabled -> Bool,
        description -> Nullable<Text>,
        secrets -> Text,
        cursor_seq -> BigInt,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        failing_since -> Nullable<Timestamp>,
        disabled_reason -> Nullable<Text>,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        org_id -> Text,
        endpoint_id -> Text,
        event_seq -> BigInt,
        event_type -> Text,
        status -> Text,
        attempts -> Integer,
        last_status_code -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        last_latency_ms -> Nullable<BigInt>,
        next_attempt_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    identity_operations (id) {
        id -> Text,
        org_id -> Text,
        kind -> Text,
        subject_id -> Text,
        other_id -> Nullable<Text>,
        reason -> Text,
        api_key_id -> Nullable<Text>,
        request_id -> Nullable<Text>,
        created_at -> Timestamp,
        undone_by -> Nullable<Text>,
        before -> Text,
    }
}

diesel::table! {
    identity_bonds (operation_id, contact_id) {
        operation_id -> Text,
        org_id -> Text,
        contact_id -> Text,
        part -> Integer,
    }
}

diesel::table! {
    identity_operation_contacts (contact_id, operation_id) {
        operation_id -> Text,
        contact_id -> Text,
    }
}

diesel::table! {
    merged_people (id) {
        id -> Text,
        org_id -> Text,
        into_id -> Text,
        operation_id -> Text,
    }
}

diesel::table! {
    blocked_identifiers (id) {
        id -> Text,
        org_id -> Text,
        kind -> Text,
        value -> Text,
        reason -> Text,
        operation_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    org_secrets (org_id) {
        org_id -> Text,
        identifier_key -> Text,
    }
}

diesel::table! {
    suppressions (id) {
        id -> Text,
        org_id -> Text,
        kinds -> Text,
        reason -> Text,
        api_key_id -> Nullable<Text>,
        request_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    suppressed_identifiers (org_id, kind, hash, suppression_id) {
        org_id -> Text,
        kind -> Text,
        hash -> Text,
        suppression_id -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    orgs,
    api_keys,
    connections,
    contacts,
    contact_keys,
    sync_runs,
    sync_leases,
    sync_seen,
    people,
    idempotency_keys,
    audit_events,
    events,
    event_counters,
    webhook_endpoints,
    webhook_deliveries,
    connection_status,
    chat_groups,
    deletion_holds,
    held_deletions,
    identity_operations,
    identity_bonds,
    identity_operation_contacts,
    merged_people,
    blocked_identifiers,
    org_secrets,
    suppressions,
    suppressed_identifiers
);
