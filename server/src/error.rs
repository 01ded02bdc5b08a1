//! The one table of error classes: every error that can reach a client names its class
//! through a `status()` method, and this table alone turns a class into an HTTP status
//! and a gRPC code. Imports nothing of the server's stages, so every stage may use it.

use axum::http::StatusCode;
use tonic::Code;

/// What kind of failure an error is, as a client should see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The request is wrong: a bad parameter, query or batch. Not worth retrying as is.
    BadRequest,
    /// No credentials, or credentials that are not valid.
    Unauthenticated,
    /// Valid credentials without the role or identity needed.
    Forbidden,
    /// No such thing.
    NotFound,
    /// The request or message is larger than a `[limits]` key allows.
    TooLarge,
    /// Too many requests or streams at once; retry later.
    TooMany,
    /// The server's storage (disk or quota) is full; nothing was stored.
    StorageFull,
    /// Took longer than its time budget.
    Timeout,
    /// The server cannot serve now (shutting down, store failing); retry.
    Unavailable,
    /// A fault of the server itself.
    Internal,
}

/// One row per class: the HTTP status and the gRPC code.
const TABLE: &[(ErrorClass, StatusCode, Code)] = &[
    (
        ErrorClass::BadRequest,
        StatusCode::BAD_REQUEST,
        Code::InvalidArgument,
    ),
    (
        ErrorClass::Unauthenticated,
        StatusCode::UNAUTHORIZED,
        Code::Unauthenticated,
    ),
    (
        ErrorClass::Forbidden,
        StatusCode::FORBIDDEN,
        Code::PermissionDenied,
    ),
    (ErrorClass::NotFound, StatusCode::NOT_FOUND, Code::NotFound),
    (
        ErrorClass::TooLarge,
        StatusCode::PAYLOAD_TOO_LARGE,
        Code::ResourceExhausted,
    ),
    (
        ErrorClass::TooMany,
        StatusCode::TOO_MANY_REQUESTS,
        Code::ResourceExhausted,
    ),
    (
        ErrorClass::StorageFull,
        StatusCode::INSUFFICIENT_STORAGE,
        Code::ResourceExhausted,
    ),
    (
        ErrorClass::Timeout,
        StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded,
    ),
    (
        ErrorClass::Unavailable,
        StatusCode::SERVICE_UNAVAILABLE,
        Code::Unavailable,
    ),
    (
        ErrorClass::Internal,
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::Internal,
    ),
];

impl ErrorClass {
    fn row(self) -> (StatusCode, Code) {
        TABLE.iter().find(|(class, _, _)| *class == self).map_or(
            (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal),
            |(_, h, g)| (*h, *g),
        )
    }

    /// The HTTP status of this class.
    pub fn http(self) -> StatusCode {
        self.row().0
    }

    /// The gRPC code of this class.
    pub fn grpc(self) -> Code {
        self.row().1
    }

    /// A gRPC status of this class with `message`.
    pub fn grpc_status(self, message: impl Into<String>) -> tonic::Status {
        tonic::Status::new(self.grpc(), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_one_row() {
        for (class, _, _) in TABLE {
            assert_eq!(
                TABLE.iter().filter(|(c, _, _)| c == class).count(),
                1,
                "{class:?}"
            );
        }
        assert_eq!(TABLE.len(), 10);
    }
}
