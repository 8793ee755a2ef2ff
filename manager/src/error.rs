//! The manager's one error type for API handlers, and its gRPC status.

use theia::model::FieldError;
use theia::scheduler::QuotaExceeded;
use tonic::Status;

use crate::store::StoreError;

/// Why an API call failed; each variant maps to one canonical gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field is malformed: INVALID_ARGUMENT.
    #[error("{0}")]
    Invalid(#[from] FieldError),
    /// Something named does not exist: NOT_FOUND.
    #[error("{0}")]
    NotFound(String),
    /// It exists already: ALREADY_EXISTS.
    #[error("{0}")]
    AlreadyExists(String),
    /// The system is not in a state that allows it: FAILED_PRECONDITION.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A quota or capacity limit: RESOURCE_EXHAUSTED.
    #[error("{0}")]
    Exhausted(String),
    /// Other managers kept changing what this call decided on: ABORTED.
    #[error("{0}")]
    Aborted(String),
    /// The store failed; nothing was acknowledged: UNAVAILABLE.
    #[error("the store failed, nothing was changed: {0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// A NOT_FOUND error for a named object.
    pub fn not_found(kind: &str, name: &str, field: &str) -> Self {
        Self::NotFound(format!("{field}: {kind} {name:?} does not exist"))
    }
}

impl From<Box<QuotaExceeded>> for ApiError {
    fn from(e: Box<QuotaExceeded>) -> Self {
        Self::Exhausted(e.to_string())
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let msg = e.to_string();
        match e {
            ApiError::Invalid(_) => Status::invalid_argument(msg),
            ApiError::NotFound(_) => Status::not_found(msg),
            ApiError::AlreadyExists(_) => Status::already_exists(msg),
            ApiError::FailedPrecondition(_) => Status::failed_precondition(msg),
            ApiError::Exhausted(_) => Status::resource_exhausted(msg),
            ApiError::Aborted(_) => Status::aborted(msg),
            ApiError::Store(_) => {
                tracing::error!(error = %msg, "store write failed");
                Status::unavailable(msg)
            }
        }
    }
}

/// A field that must be present but is not.
pub fn required(field: &str) -> ApiError {
    ApiError::Invalid(FieldError::new(field, "is required"))
}
