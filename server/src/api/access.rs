//! Who may call what on the HTTP API: one table of routes and methods with the access
//! each needs, bearer tokens checked against `[[security.api_tokens]]` (hashed,
//! constant time), and the 401 and 403 answers.
//!
//! With no API tokens configured the API is open (the server says so at start).

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::api::error::ApiError;
use crate::security::token::{TokenSet, bearer};
use crate::security::{ApiToken, Role};

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, token or not.
    Open,
    /// A token with at least this role.
    Role(Role),
}

const READER: Access = Access::Role(Role::Reader);
const ADMIN: Access = Access::Role(Role::Admin);

/// Every route and method of the API with the access it needs: `GET` rows cover `HEAD`
/// too, and `{name}` matches one path segment. A request no row matches needs `reader`
/// for `GET`/`HEAD` (so unknown paths answer 404 only to a reader) and `admin` for any
/// other method, so a route added without a row fails closed.
pub const ACCESS_TABLE: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Access::Open),
    ("GET", "/metrics", READER),
    ("GET", "/api/v1/openapi.json", READER),
    ("GET", "/api/v1/search", READER),
    ("GET", "/api/v1/count", READER),
    ("GET", "/api/v1/aggregate", READER),
    ("GET", "/api/v1/tail", READER),
    ("GET", "/api/v1/fields", READER),
    ("GET", "/api/v1/detections", READER),
    ("GET", "/api/v1/rules", READER),
    ("GET", "/api/v1/alerts", READER),
    ("GET", "/api/v1/alerts/dead-letters", READER),
    ("GET", "/api/v1/alerts/{id}", READER),
    ("POST", "/api/v1/alerts/{id}/ack", ADMIN),
    ("POST", "/api/v1/alerts/{id}/resolve", ADMIN),
    ("GET", "/api/v1/silences", READER),
    ("POST", "/api/v1/silences", ADMIN),
    ("DELETE", "/api/v1/silences/{id}", ADMIN),
];

/// The access `method` on `path` needs, from [`ACCESS_TABLE`].
pub fn required(method: &Method, path: &str) -> Access {
    let safe = *method == Method::GET || *method == Method::HEAD;
    let row_method = if *method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ACCESS_TABLE
        .iter()
        .find(|(m, pattern, _)| *m == row_method && path_matches(pattern, path))
        .map_or(if safe { READER } else { ADMIN }, |(_, _, access)| *access)
}

/// Whether `path` matches `pattern`, where `{name}` stands for one non-empty segment.
fn path_matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') && !g.is_empty() => {}
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// Who a token belongs to and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `name` of its `[[security.api_tokens]]` entry (for logs; never the token).
    pub name: String,
    pub role: Role,
}

/// A request that may not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not one `Bearer <token>`.
    Malformed,
    /// A bearer token that matches no configured hash.
    Unknown,
    /// A valid token whose role is too low.
    Forbidden {
        needed: Role,
        grant: Grant,
        method: Method,
        path: String,
    },
}

impl AuthFailure {
    /// The `reason` label of `logward_auth_failures_total{surface="http"}`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing_token",
            AuthFailure::Malformed => "malformed_header",
            AuthFailure::Unknown => "bad_token",
            AuthFailure::Forbidden { .. } => "forbidden",
        }
    }

    /// The answer: 401 with `WWW-Authenticate: Bearer`, or 403 naming the role needed
    /// and the token's name and role. Both are JSON with `error` and `reason`.
    pub fn into_api_error(self) -> ApiError {
        let reason = self.reason();
        let challenge = |error: Option<&str>| {
            let value = match error {
                None => "Bearer realm=\"logward\"".to_owned(),
                Some(e) => format!("Bearer realm=\"logward\", error=\"{e}\""),
            };
            HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer"))
        };
        let unauthorized = |message: &str, error: Option<&str>| {
            ApiError::new(StatusCode::UNAUTHORIZED, message)
                .with_field("reason", reason)
                .with_header(header::WWW_AUTHENTICATE, challenge(error))
        };
        match self {
            AuthFailure::Missing => unauthorized(
                "missing API token: send 'Authorization: Bearer <token>' with a token of [[security.api_tokens]]",
                None,
            ),
            AuthFailure::Malformed => unauthorized(
                "the Authorization header is not a single 'Bearer <token>'",
                Some("invalid_request"),
            ),
            AuthFailure::Unknown => unauthorized("unknown API token", Some("invalid_token")),
            AuthFailure::Forbidden {
                needed,
                grant,
                method,
                path,
            } => ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "token '{}' has role {}; {method} {path} needs role {}",
                    grant.name,
                    role_name(grant.role),
                    role_name(needed)
                ),
            )
            .with_field("reason", reason)
            .with_field("required_role", role_name(needed))
            .with_field("token", grant.name)
            .with_field("role", role_name(grant.role))
            .with_header(
                header::WWW_AUTHENTICATE,
                challenge(Some("insufficient_scope")),
            ),
        }
    }
}

/// The role as configured (`reader`, `admin`).
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Reader => "reader",
        Role::Admin => "admin",
    }
}

/// The configured API tokens; none means the API is open.
#[derive(Debug, Clone)]
pub struct ApiAuth {
    tokens: TokenSet<Grant>,
}

impl ApiAuth {
    pub fn new(tokens: &[ApiToken]) -> Self {
        ApiAuth {
            tokens: TokenSet::new(tokens.iter().map(|t| {
                (
                    t.token_sha256.clone(),
                    Grant {
                        name: t.name.clone(),
                        role: t.role,
                    },
                )
            })),
        }
    }

    /// Whether requests go through without a token.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Decides a request: `Ok(Some(grant))` for a token allowed here, `Ok(None)` when
    /// the API or the route is open (a token sent to an open route is not checked).
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Option<Grant>, AuthFailure> {
        let needed = match required(method, path) {
            _ if self.is_open() => return Ok(None),
            Access::Open => return Ok(None),
            Access::Role(role) => role,
        };
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let value = match (values.next(), values.next()) {
            (None, _) => return Err(AuthFailure::Missing),
            (Some(v), None) => v,
            (Some(_), Some(_)) => return Err(AuthFailure::Malformed),
        };
        let token = value
            .to_str()
            .ok()
            .and_then(bearer)
            .ok_or(AuthFailure::Malformed)?;
        let grant = self.tokens.verify(token).ok_or(AuthFailure::Unknown)?;
        if grant.role < needed {
            return Err(AuthFailure::Forbidden {
                needed,
                grant: grant.clone(),
                method: method.clone(),
                path: path.to_owned(),
            });
        }
        Ok(Some(grant.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::hash_token;

    fn auth() -> ApiAuth {
        ApiAuth::new(&[
            ApiToken {
                name: "grafana".into(),
                token_sha256: hash_token("lw_reader"),
                role: Role::Reader,
            },
            ApiToken {
                name: "ops".into(),
                token_sha256: hash_token("lw_admin"),
                role: Role::Admin,
            },
        ])
    }

    /// One helper: `method path` with an optional `Authorization` value, and the
    /// expected token name (`Ok`) or failure reason (`Err`); `Ok("")` is an open pass.
    fn check(
        auth: &ApiAuth,
        request: &str,
        authorization: Option<&str>,
        expected: Result<&str, &str>,
    ) {
        let (method, path) = request.split_once(' ').expect("method and path");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let mut headers = HeaderMap::new();
        if let Some(v) = authorization {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(v).expect("value"),
            );
        }
        let got = auth
            .check(&method, path, &headers)
            .map(|g| g.map(|g| g.name).unwrap_or_default())
            .map_err(|f| f.reason());
        let expected = expected.map(str::to_owned);
        assert_eq!(got, expected, "{request} with {authorization:?}");
    }

    #[test]
    fn the_role_table() {
        let a = auth();
        let (r, w) = (Some("Bearer lw_reader"), Some("Bearer lw_admin"));
        check(&a, "GET /healthz", None, Ok(""));
        check(&a, "HEAD /healthz", None, Ok(""));
        check(&a, "GET /metrics", None, Err("missing_token"));
        check(&a, "GET /metrics", r, Ok("grafana"));
        for path in [
            "/api/v1/search?q=x",
            "/api/v1/count",
            "/api/v1/aggregate",
            "/api/v1/tail",
            "/api/v1/fields",
            "/api/v1/detections",
            "/api/v1/rules",
            "/api/v1/openapi.json",
            "/api/v1/alerts",
            "/api/v1/alerts/a1",
            "/api/v1/alerts/dead-letters",
            "/api/v1/silences",
            "/no/such/route",
        ] {
            let path = path.split('?').next().unwrap_or(path);
            check(&a, &format!("GET {path}"), None, Err("missing_token"));
            check(&a, &format!("GET {path}"), r, Ok("grafana"));
            check(&a, &format!("HEAD {path}"), r, Ok("grafana"));
            check(&a, &format!("GET {path}"), w, Ok("ops"));
        }
        for request in [
            "POST /api/v1/silences",
            "DELETE /api/v1/silences/s1",
            "POST /api/v1/alerts/a1/ack",
            "POST /api/v1/alerts/a1/resolve",
            "PUT /api/v1/rules",
            "POST /api/v1/rules",
            "DELETE /api/v1/rules/x",
            "PATCH /api/v1/alerts/a1",
            "POST /api/v1/search",
            "POST /healthz",
            "OPTIONS /api/v1/search",
        ] {
            check(&a, request, None, Err("missing_token"));
            check(&a, request, r, Err("forbidden"));
            check(&a, request, w, Ok("ops"));
        }
    }

    #[test]
    fn tokens_and_headers() {
        let a = auth();
        let req = "GET /api/v1/search";
        check(&a, req, Some("Bearer lw_unknown"), Err("bad_token"));
        check(&a, req, Some("bearer  lw_reader "), Ok("grafana"));
        check(&a, req, Some("Basic bHc6cmVhZGVy"), Err("malformed_header"));
        check(&a, req, Some("Bearer"), Err("malformed_header"));
        check(&a, req, Some("lw_reader"), Err("malformed_header"));
        check(
            &a,
            req,
            Some(&hash_token("lw_reader")),
            Err("malformed_header"),
        );
        check(
            &a,
            req,
            Some(&format!("Bearer {}", hash_token("lw_reader"))),
            Err("bad_token"),
        );
        let mut two = HeaderMap::new();
        two.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer lw_admin"),
        );
        two.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer lw_reader"),
        );
        let got = a.check(&Method::GET, "/api/v1/search", &two);
        assert_eq!(got, Err(AuthFailure::Malformed));
        let open = ApiAuth::new(&[]);
        assert!(open.is_open());
        check(&open, "DELETE /api/v1/silences/s1", None, Ok(""));
        check(&open, "GET /metrics", Some("Bearer whatever"), Ok(""));
    }

    #[test]
    fn every_route_has_a_row() {
        let mut routes = crate::api::ROUTES.to_vec();
        routes.extend_from_slice(crate::api::ALERTING_ROUTES);
        for route in routes {
            assert!(
                ACCESS_TABLE.iter().any(|(_, p, _)| *p == route),
                "{route} has no row in ACCESS_TABLE"
            );
        }
        for (method, pattern, _) in ACCESS_TABLE {
            assert!(
                Method::from_bytes(method.as_bytes()).is_ok() && pattern.starts_with('/'),
                "{method} {pattern}"
            );
        }
    }

    #[test]
    fn answers_say_what_is_wrong() {
        let e = AuthFailure::Missing.into_api_error();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert!(e.message.contains("Authorization: Bearer"), "{}", e.message);
        assert_eq!(e.headers[0].1, "Bearer realm=\"logward\"");
        let e = AuthFailure::Unknown.into_api_error();
        assert_eq!(e.body()["reason"], "bad_token");
        assert!(
            e.headers[0]
                .1
                .to_str()
                .unwrap_or("")
                .contains("invalid_token")
        );
        let e = AuthFailure::Forbidden {
            needed: Role::Admin,
            grant: Grant {
                name: "grafana".into(),
                role: Role::Reader,
            },
            method: Method::POST,
            path: "/api/v1/silences".into(),
        }
        .into_api_error();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert_eq!(
            e.body(),
            serde_json::json!({
                "error": "token 'grafana' has role reader; POST /api/v1/silences needs role admin",
                "reason": "forbidden",
                "required_role": "admin",
                "token": "grafana",
                "role": "reader",
            })
        );
    }
}
