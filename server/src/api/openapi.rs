//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`. A test checks that it
//! lists every route of the router and nothing else, and that every operation names
//! the role it needs and its 401/403 answers.

use serde_json::{Value, json};

fn param(name: &str, description: &str, schema: Value) -> Value {
    let mut p = json!({"name": name, "in": "query", "required": false, "description": description});
    p["schema"] = schema;
    p
}

fn range_params() -> Vec<Value> {
    vec![
        param(
            "q",
            "Query (Lucene-like, AND by default, `message` is the default field); empty or `*` matches all. At most `[limits] query_max_bytes` bytes (default 4096) and `query_max_clauses` terms, phrases, set values and groups (default 64); parentheses nest at most 16 deep",
            json!({"type": "string", "maxLength": 4096}),
        ),
        param(
            "start",
            "Inclusive start: RFC 3339, Unix milliseconds, `now` or `now-15m` (units ms s m h d w)",
            json!({"type": "string", "example": "now-1h"}),
        ),
        param(
            "end",
            "Exclusive end, same forms as start",
            json!({"type": "string", "example": "now"}),
        ),
    ]
}

fn error_responses() -> Value {
    json!({
        "400": {"description": "Bad parameter or query; says what is wrong", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}, "example": {"error": "unknown field 'colour'; known fields are id, timestamp, …"}}}},
        "503": {"description": "Time budget (`search_timeout_ms`) or request time (`http_request_timeout_ms`) spent, or the store is unavailable", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}, "example": {"error": "the query ran past its time budget of 10s; narrow the time range or make the query more selective", "limit": "search_timeout_ms", "value": 10000}}}}
    })
}

fn ok_json(description: &str, schema: Value, example: Value) -> Value {
    let mut responses = error_responses();
    let mut body = json!({});
    body["schema"] = schema;
    body["example"] = example;
    responses["200"] = json!({"description": description, "content": {}});
    responses["200"]["content"]["application/json"] = body;
    responses
}

/// The whole document.
pub fn document() -> Value {
    let mut search_params = range_params();
    search_params.extend([
        param("limit", "Hits per page, default 100, clamped at 10000; 0 returns only `total`; above 1e9 is a 400", json!({"type": "integer", "minimum": 0})),
        param("order", "By timestamp", json!({"type": "string", "enum": ["desc", "asc"], "default": "desc"})),
        param("cursor", "`next_cursor` of the previous page, same q, times and order", json!({"type": "string"})),
        param("fields", "Comma-separated fields to return, e.g. `timestamp,message,container.name`", json!({"type": "string"})),
        param("highlight", "Add `highlight.message` (fragment, ranges, html) to each hit", json!({"type": "boolean", "default": false})),
    ]);
    let mut agg_params = range_params();
    agg_params.extend([
        param("type", "`terms` (default) or `date_histogram`", json!({"type": "string", "enum": ["terms", "date_histogram"]})),
        param("field", "terms: a keyword field (host, source, stream, container.*, container.labels.<l>, fields.<f>); date_histogram: timestamp", json!({"type": "string"})),
        param("size", "terms: number of top values, 1..1000, default 10", json!({"type": "integer", "minimum": 1, "maximum": 1000})),
        param("interval", "date_histogram: `auto` (default) or a fixed interval like `30s`, `5m`, `1h`, `1d`; at most 10000 buckets", json!({"type": "string"})),
    ]);
    let event_example = json!({"id": "6f1c2d0e-812-17", "timestamp": "2024-05-01T10:00:07.123456789Z", "received_at": "2024-05-01T10:00:07.301225112Z", "host": "web1", "source": "docker", "message": "connect() failed (111: Connection refused)", "stream": "stderr", "container": {"id": "4f3c…", "name": "nginx", "image": "nginx:1.25", "labels": {"app": "frontend"}}, "fields": {}});
    let detection_params = vec![
        param("rule", "Only this rule id", json!({"type": "string"})),
        param(
            "level",
            "Only these levels, comma-separated",
            json!({"type": "string", "example": "high,critical"}),
        ),
        param(
            "since",
            "Detected at or after: RFC 3339, Unix ms, `now`, `now-1h`",
            json!({"type": "string"}),
        ),
        param(
            "until",
            "Detected before, same forms as since",
            json!({"type": "string"}),
        ),
        param(
            "limit",
            "At most this many, 1..10000, default 100",
            json!({"type": "integer", "minimum": 1, "maximum": 10000}),
        ),
    ];
    let detection_example = json!({"id": "1714557607301225112-1", "detected_at": "2024-05-01T10:00:07.301225112Z", "detected_at_nanos": 1_714_557_607_301_225_112_i64, "event_time": "2024-05-01T10:00:07.123456789Z", "rule_id": "b2a7…", "rule_title": "SSH brute force", "level": "high", "tags": ["attack.credential_access", "attack.t1110"], "correlation": true, "group": {"ssh.src_ip": "203.0.113.5"}, "event_ids": ["6f1c2d0e-812-17", "6f1c2d0e-812-18"], "host": "web1"});
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "logward HTTP API", "version": "1", "description": "Search, count, aggregate and tail the audit events logward-server stores. Every error is a JSON object {\"error\": \"…\"}."},
        "paths": {
            "/api/v1/search": {"get": {"summary": "Search events, sorted by timestamp, with a stable cursor", "parameters": search_params,
                "responses": ok_json("A page of hits", json!({"$ref": "#/components/schemas/SearchResponse"}), json!({"total": 1342, "hits": [event_example], "next_cursor": "d1714557607123456789.9f0c3e2a41b7d655"}))}},
            "/api/v1/count": {"get": {"summary": "Count matching events", "parameters": range_params(),
                "responses": ok_json("The count", json!({"type": "object", "properties": {"count": {"type": "integer"}}}), json!({"count": 1342}))}},
            "/api/v1/aggregate": {"get": {"summary": "Top values of a field (terms) or counts per time bucket (date_histogram)", "parameters": agg_params,
                "responses": ok_json("Buckets", json!({"$ref": "#/components/schemas/AggregateResponse"}), json!({"total": 1342, "type": "terms", "field": "container.name", "buckets": [{"key": "nginx", "count": 1200}, {"key": "api", "count": 142}], "other_count": 0}))}},
            "/api/v1/tail": {"get": {"summary": "Server-Sent Events of new matching events as they arrive, before commit", "parameters": [
                    param("q", "Query, as for search", json!({"type": "string"})),
                    param("heartbeat", "Seconds between heartbeat comments, 1..300, default 15", json!({"type": "integer"})),
                    {"name": "Last-Event-ID", "in": "header", "required": false, "description": "Resume after this event id: events since then are replayed from the index first", "schema": {"type": "string", "example": "1714557607301225112.9f0c3e2a41b7d655"}}
                ],
                "responses": {"200": {"description": "An SSE stream. Each event: `id: <received_at nanos>.<uid hex>` and `data: <event JSON>`; `event: lagged` when the client fell behind, `event: gap` when a resume had more than 10000 events, `: heartbeat` comments", "content": {"text/event-stream": {"schema": {"type": "string"}, "example": "id: 1714557607301225112.9f0c3e2a41b7d655\ndata: {\"id\":\"…\",\"message\":\"…\"}\n\n"}}},
                    "400": error_responses()["400"].clone()}}},
            "/api/v1/fields": {"get": {"summary": "Known fields, their types, and whether they are searchable and aggregatable", "parameters": [],
                "responses": ok_json("Fields", json!({"type": "object", "properties": {"fields": {"type": "array", "items": {"$ref": "#/components/schemas/Field"}}}}), json!({"fields": [{"name": "host", "type": "keyword", "searchable": true, "aggregatable": true}, {"name": "message", "type": "text", "searchable": true, "aggregatable": false}]}))}},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}}},
            "/healthz": {"get": {"summary": "Health: 503 while the store cannot commit (e.g. a full disk); nothing is acked then. With alerting on, `alerting.down` lists the notification channels whose last attempt failed (still 200: their notifications wait in the outbox)", "responses": {
                "200": {"description": "Healthy", "content": {"application/json": {"example": {"status": "ok", "alerting": {"down": ["oncall-mail"], "dead_letters": 0}}}}},
                "503": {"description": "Unhealthy", "content": {"application/json": {"example": {"status": "unhealthy", "error": "commit of partition 2024-05-01 failed: No space left on device"}}}}}}},
            "/metrics": {"get": {"summary": "Prometheus text metrics; with alerting on also `logward_alert_*` (e.g. `logward_alert_channel_up{channel=\"siem\"} 0`)", "responses": {"200": {"description": "Metrics", "content": {"text/plain": {"example": "logward_events_indexed_total 1342\n"}}}}}}
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Event": {"type": "object", "properties": {"id": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"}, "received_at": {"type": "string", "format": "date-time"}, "host": {"type": "string"}, "source": {"type": "string", "enum": ["docker", "journald", "collector", "unknown"]}, "message": {"type": "string"}, "message_b64": {"type": "string", "format": "byte", "description": "The exact bytes, base64; only when the message is not valid UTF-8"}, "stream": {"type": "string", "enum": ["stdout", "stderr"]}, "container": {"type": ["object", "null"]}, "fields": {"type": "object"}, "highlight": {"type": "object"}}},
            "SearchResponse": {"type": "object", "properties": {"total": {"type": "integer"}, "hits": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}, "next_cursor": {"type": ["string", "null"]}}},
            "AggregateResponse": {"type": "object", "properties": {"total": {"type": "integer"}, "type": {"type": "string"}, "field": {"type": "string"}, "interval": {"type": "string"}, "other_count": {"type": "integer"}, "buckets": {"type": "array", "items": {"type": "object", "properties": {"key": {"type": "string"}, "key_ms": {"type": "integer"}, "count": {"type": "integer"}}}}}},
            "Field": {"type": "object", "properties": {"name": {"type": "string"}, "type": {"type": "string", "enum": ["keyword", "text", "date", "object"]}, "searchable": {"type": "boolean"}, "aggregatable": {"type": "boolean"}}}
        }}
    });
    doc["paths"]["/api/v1/detections"] = json!({"get": {"summary": "Detections of the live rules, newest first (the last 10000 in memory; all in <data_dir>/detections/)", "parameters": detection_params,
        "responses": ok_json("Detections", json!({"type": "object", "properties": {"count": {"type": "integer"}, "detections": {"type": "array", "items": {"$ref": "#/components/schemas/Detection"}}}}), json!({"count": 1, "detections": [detection_example]}))}});
    doc["paths"]["/api/v1/rules"] = json!({"get": {"summary": "Loaded rules with their source (builtin or file), status and level, and load errors", "parameters": [],
        "responses": ok_json("Rules", json!({"type": "object", "properties": {"builtin": {"type": "boolean"}, "rules_dir": {"type": ["string", "null"]}, "loaded_at": {"type": "string"}, "rules": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "title": {"type": "string"}, "kind": {"type": "string", "enum": ["rule", "correlation", "filter"]}, "source": {"type": "string"}, "status": {"type": ["string", "null"]}, "level": {"type": ["string", "null"]}, "tags": {"type": "array", "items": {"type": "string"}}}}}, "errors": {"type": "array", "items": {"type": "object", "properties": {"source": {"type": "string"}, "error": {"type": "string"}, "effect": {"type": "string"}}}}}}),
            json!({"builtin": true, "rules_dir": "/etc/logward/rules", "loaded_at": "2024-05-01T10:00:00Z", "rules": [{"id": "local-1", "title": "Shell in web container", "kind": "rule", "source": "/etc/logward/rules/local.yml", "status": "stable", "level": "high", "tags": []}], "errors": [{"source": "/etc/logward/rules/broken.yml", "error": "rule 'x': condition: unknown selection 'sel'", "effect": "the previous version of the file is kept"}]}))}});
    doc["components"]["schemas"]["Detection"] = json!({"type": "object", "properties": {"id": {"type": "string"}, "detected_at": {"type": "string", "format": "date-time"}, "detected_at_nanos": {"type": "integer"}, "event_time": {"type": "string", "format": "date-time"}, "rule_id": {"type": "string"}, "rule_title": {"type": "string"}, "level": {"type": ["string", "null"]}, "tags": {"type": "array", "items": {"type": "string"}}, "correlation": {"type": "boolean"}, "group": {"type": "object", "additionalProperties": {"type": "string"}}, "event_ids": {"type": "array", "items": {"type": "string"}}, "host": {"type": ["string", "null"]}}});
    alerting_paths(&mut doc);
    security(&mut doc);
    doc
}

fn error_ref(description: &str, example: Value) -> Value {
    let mut response = json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    response["content"]["application/json"]["example"] = example;
    response
}

/// The bearer scheme, and on every operation the role it needs (`x-logward-role`, from
/// the access table) and the answers of the guard: 401/403, 413 for request bodies,
/// 429 for the slot-bound routes.
fn security(doc: &mut Value) {
    use crate::api::access::{Access, required, role_name};
    doc["components"]["securitySchemes"] = json!({"bearer": {"type": "http", "scheme": "bearer",
        "description": "An API token of `[[security.api_tokens]]` (role reader or admin). Without configured tokens the API is open."}});
    doc["security"] = json!([{"bearer": []}]);
    let unauthorized = error_ref(
        "Missing or unknown API token (with `WWW-Authenticate: Bearer`)",
        json!({"error": "unknown API token", "reason": "bad_token"}),
    );
    let forbidden = error_ref(
        "The token's role is too low",
        json!({"error": "token 'grafana' has role reader; POST /api/v1/silences needs role admin", "reason": "forbidden", "required_role": "admin", "token": "grafana", "role": "reader"}),
    );
    let too_large = error_ref(
        "Body larger than `[limits] http_max_body_bytes`",
        json!({"error": "the request body is larger than limits.http_max_body_bytes (1048576 bytes)", "limit": "http_max_body_bytes", "value": 1_048_576}),
    );
    let busy = error_ref(
        "All slots taken (`max_concurrent_searches`, or `max_tail_clients` for the tail); `Retry-After: 1`",
        json!({"error": "8 searches are running at once; limits.max_concurrent_searches is 8: retry in a moment", "limit": "max_concurrent_searches", "value": 8}),
    );
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in ops.iter_mut() {
            let m = axum::http::Method::from_bytes(method.to_uppercase().as_bytes())
                .unwrap_or(axum::http::Method::GET);
            match required(&m, path) {
                Access::Open => op["security"] = json!([]),
                Access::Role(role) => {
                    op["x-logward-role"] = json!(role_name(role));
                    op["responses"]["401"] = unauthorized.clone();
                    op["responses"]["403"] = forbidden.clone();
                }
            }
            if op.get("requestBody").is_some() {
                op["responses"]["413"] = too_large.clone();
            }
            if [
                "/api/v1/search",
                "/api/v1/count",
                "/api/v1/aggregate",
                "/api/v1/tail",
            ]
            .contains(&path.as_str())
            {
                op["responses"]["429"] = busy.clone();
            }
        }
    }
}

/// The alerting routes (`logward_alert::router`); see docs/ALERTING.md.
fn alerting_paths(doc: &mut Value) {
    let off = "503 when alerting is off (no `[alerting]` channels)";
    let id = || param_in("id", "path", "The alert's id", true);
    let alert_example = json!({"id": "5d1e…", "rule_id": "b2a1c0de-ssh-brute-force", "rule_title": "SSH brute force", "level": "high", "tags": ["attack.t1110"], "group_key": {"host": "web1"}, "host": "web1", "container": "sshd", "first_seen": "2024-05-01T10:00:00Z", "last_seen": "2024-05-01T10:00:29Z", "count": 42, "samples": [{"id": "6f1c…-812-17", "message": "Failed password for root from 203.0.113.9"}], "query": "id:\"6f1c…-812-17\"", "link": "http://127.0.0.1:7421/api/v1/search?q=…", "status": "open"});
    let alert_ref = json!({"$ref": "#/components/schemas/Alert"});
    let silence_ref = json!({"$ref": "#/components/schemas/Silence"});
    let p = &mut doc["paths"];
    p["/api/v1/alerts"] = json!({"get": {"summary": format!("Alerts, newest last_seen first; {off}"), "parameters": [
            param("since", "Last seen at or after (RFC 3339)", json!({"type": "string"})),
            param("rule", "Only this rule id", json!({"type": "string"})),
            param("level", "Minimum level", json!({"type": "string", "enum": ["informational", "low", "medium", "high", "critical"]})),
            param("status", "Only this status", json!({"type": "string", "enum": ["open", "acknowledged", "resolved"]})),
            param("limit", "At most this many, default 100, at most 1000", json!({"type": "integer", "minimum": 1, "maximum": 1000}))],
        "responses": ok_json("Alerts", json!({"type": "object", "properties": {"alerts": {"type": "array", "items": alert_ref}}}), json!({"alerts": [alert_example]}))}});
    p["/api/v1/alerts/dead-letters"] = json!({"get": {"summary": "Notifications given up after their last attempt", "parameters": [],
        "responses": ok_json("Dead letters", json!({"type": "object", "properties": {"dead_letters": {"type": "array", "items": {"type": "object", "properties": {"entry": {"type": "object"}, "dead_at": {"type": "string", "format": "date-time"}}}}}}), json!({"dead_letters": []}))}});
    p["/api/v1/alerts/{id}"] = json!({"get": {"summary": "One alert", "parameters": [id()],
        "responses": ok_json("The alert", alert_ref.clone(), alert_example.clone())}});
    p["/api/v1/alerts/{id}/ack"] = json!({"post": {"summary": "Acknowledge: counts continue, reminders stop", "parameters": [id()],
        "responses": ok_json("The alert", alert_ref.clone(), alert_example.clone())}});
    p["/api/v1/alerts/{id}/resolve"] = json!({"post": {"summary": "Resolve: the next detection opens a new alert", "parameters": [id()],
        "responses": ok_json("The alert", alert_ref.clone(), alert_example)}});
    p["/api/v1/silences"] = json!({
        "get": {"summary": "Silences with their state (pending, active, expired)", "parameters": [],
            "responses": ok_json("Silences", json!({"type": "object", "properties": {"silences": {"type": "array", "items": silence_ref.clone()}}}), json!({"silences": []}))},
        "post": {"summary": "Create a silence", "parameters": [],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewSilence"}, "example": {"matchers": [{"name": "rule", "value": "b2a1c0de-ssh-brute-force"}, {"name": "host", "op": "=~", "value": "web[0-9]+"}], "duration": "2h", "comment": "pen test until noon", "created_by": "alice"}}}},
            "responses": {"201": {"description": "The silence", "content": {"application/json": {"schema": silence_ref.clone()}}}, "400": error_responses()["400"].clone()}}});
    p["/api/v1/silences/{id}"] = json!({"delete": {"summary": "Expire a silence now", "parameters": [param_in("id", "path", "The silence's id", true)],
        "responses": ok_json("The silence, expired", silence_ref, json!({}))}});
    let s = &mut doc["components"]["schemas"];
    s["Alert"] = json!({"type": "object", "properties": {"id": {"type": "string"}, "rule_id": {"type": "string"}, "rule_title": {"type": "string"}, "level": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}, "group_key": {"type": "object", "additionalProperties": {"type": "string"}}, "host": {"type": "string"}, "container": {"type": ["string", "null"]}, "image": {"type": ["string", "null"]}, "first_seen": {"type": "string", "format": "date-time"}, "last_seen": {"type": "string", "format": "date-time"}, "count": {"type": "integer"}, "samples": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "message": {"type": "string"}, "message_b64": {"type": "string", "format": "byte"}}}}, "query": {"type": "string"}, "link": {"type": "string"}, "status": {"type": "string", "enum": ["open", "acknowledged", "resolved"]}}});
    s["Matcher"] = json!({"type": "object", "required": ["name", "value"], "properties": {"name": {"type": "string", "description": "rule, level, host, container, image, tag, a group-key name or a field"}, "op": {"type": "string", "enum": ["=", "!=", "=~", "!~"], "default": "="}, "value": {"type": "string"}}});
    s["NewSilence"] = json!({"type": "object", "required": ["matchers", "comment"], "properties": {"matchers": {"type": "array", "items": {"$ref": "#/components/schemas/Matcher"}}, "starts_at": {"type": "string", "format": "date-time"}, "ends_at": {"type": "string", "format": "date-time"}, "duration": {"type": "string", "example": "2h"}, "comment": {"type": "string"}, "created_by": {"type": "string"}}});
    s["Silence"] = json!({"type": "object", "properties": {"id": {"type": "string"}, "matchers": {"type": "array", "items": {"$ref": "#/components/schemas/Matcher"}}, "starts_at": {"type": "string", "format": "date-time"}, "ends_at": {"type": "string", "format": "date-time"}, "comment": {"type": "string"}, "created_by": {"type": "string"}, "state": {"type": "string", "enum": ["pending", "active", "expired"]}}});
}

fn param_in(name: &str, location: &str, description: &str, required: bool) -> Value {
    json!({"name": name, "in": location, "required": required, "description": description, "schema": {"type": "string"}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
        let mut routes = crate::api::ROUTES.to_vec();
        routes.extend_from_slice(crate::api::ALERTING_ROUTES);
        documented.sort_unstable();
        routes.sort_unstable();
        assert_eq!(documented, routes);
    }

    #[test]
    fn every_operation_names_its_role_and_guard_answers() {
        let doc = document();
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("operations") {
                if path == "/healthz" {
                    assert_eq!(op["security"], json!([]), "{method} {path}");
                    continue;
                }
                let role = op["x-logward-role"].as_str().unwrap_or("");
                let expected = if method == "get" { "reader" } else { "admin" };
                assert_eq!(role, expected, "{method} {path}");
                for code in ["401", "403"] {
                    assert!(
                        op["responses"][code].is_object(),
                        "{method} {path} lacks {code}"
                    );
                }
            }
        }
        assert!(doc["paths"]["/api/v1/silences"]["post"]["responses"]["413"].is_object());
        assert!(doc["paths"]["/api/v1/search"]["get"]["responses"]["429"].is_object());
    }
}
