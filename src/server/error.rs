//! The API's one error type. Every failure a client can cause, and every server fault, is
//! an [`ErrorCode`]: a stable machine-readable code with its HTTP status, mapped in one
//! place ([`ErrorCode::status`]). Bodies are `{"error": {"code": "...", "message": "..."}}`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::metrics;

/// Stable error codes (the `code` field of every error body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not JSON (syntax error, invalid UTF-8, nesting deeper than 128).
    InvalidJson,
    /// JSON of the wrong shape: unknown field, wrong type, number out of range.
    InvalidRequest,
    /// A body that is not `Content-Type: application/json`.
    UnsupportedMediaType,
    /// A body over the server's limit (`--max-body-bytes`).
    BodyTooLarge,
    UnknownIndex,
    UnknownDocument,
    /// No such route.
    NotFound,
    MethodNotAllowed,
    /// `k` outside `1..=max_k`.
    KOutOfRange,
    /// Neither `query` text nor `vectors`, or blank text.
    EmptyQuery,
    /// Query text over `--max-query-bytes`.
    QueryTooLong,
    /// Query vectors whose length is not the index's dimension.
    WrongDimension,
    /// Query vectors with non-finite values, or more rows than allowed.
    InvalidVectors,
    /// More queries in one batch than `--max-batch`, or none.
    BadBatchSize,
    /// A `mode` that does not parse.
    InvalidMode,
    /// A `mode` whose stage the index was built without, or that needs a part of the
    /// query the request lacks (text for bm25, vectors for MaxSim re-ranking).
    UnsupportedMode,
    /// A search parameter (`ncells`, `ndocs`, `candidates`, `ef_search`,
    /// `sparse_candidates`) above the server's cap (`--max-candidates`, `--max-ncells`).
    ParamOutOfRange,
    /// The response would exceed `--max-response-bytes`.
    ResponseTooLarge,
    /// A `filter` that does not parse, names an unknown field or compares a field with a
    /// value of another type (the message gives the JSON path).
    InvalidFilter,
    /// The request ran past `--request-timeout`; its search was stopped.
    DeadlineExceeded,
    /// A write to an index served with `--read-only`.
    ReadOnly,
    /// A document that cannot be written: no id, no text where the index needs it, bad
    /// vectors, an id twice in one request.
    InvalidDocument,
    /// `add` of an id a live document already has (send `upsert`).
    DocumentExists,
    /// The index's writer has stopped (a failed commit it could not recover from).
    WriterUnavailable,
    /// The index is still being opened (`tessera serve` answers before its indexes are
    /// loaded); comes with `Retry-After`.
    IndexLoading,
    /// The index failed to load (the message says why).
    IndexUnavailable,
    /// A fault of the server (a bug); the message says what, the server keeps running.
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            InvalidJson | InvalidRequest | KOutOfRange | EmptyQuery | QueryTooLong
            | WrongDimension | InvalidVectors | BadBatchSize | InvalidMode | UnsupportedMode
            | ParamOutOfRange | ResponseTooLarge | InvalidFilter => StatusCode::BAD_REQUEST,
            DeadlineExceeded | WriterUnavailable | IndexLoading | IndexUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            InvalidDocument => StatusCode::BAD_REQUEST,
            ReadOnly => StatusCode::FORBIDDEN,
            DocumentExists => StatusCode::CONFLICT,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnknownIndex | UnknownDocument | NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidJson => "invalid_json",
            InvalidRequest => "invalid_request",
            UnsupportedMediaType => "unsupported_media_type",
            BodyTooLarge => "body_too_large",
            UnknownIndex => "unknown_index",
            UnknownDocument => "unknown_document",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            KOutOfRange => "k_out_of_range",
            EmptyQuery => "empty_query",
            QueryTooLong => "query_too_long",
            WrongDimension => "wrong_dimension",
            InvalidVectors => "invalid_vectors",
            BadBatchSize => "bad_batch_size",
            InvalidMode => "invalid_mode",
            UnsupportedMode => "unsupported_mode",
            ParamOutOfRange => "param_out_of_range",
            ResponseTooLarge => "response_too_large",
            InvalidFilter => "invalid_filter",
            DeadlineExceeded => "deadline_exceeded",
            ReadOnly => "read_only",
            InvalidDocument => "invalid_document",
            DocumentExists => "document_exists",
            WriterUnavailable => "writer_unavailable",
            IndexLoading => "index_loading",
            IndexUnavailable => "index_unavailable",
            Internal => "internal",
        }
    }
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// The same error about one query of a batch.
    pub fn in_query(self, i: usize) -> Self {
        ApiError {
            message: format!("queries[{i}]: {}", self.message),
            ..self
        }
    }
}

/// `{"error": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::error(self.code.as_str());
        if self.code == ErrorCode::Internal {
            eprintln!("error: {}", self.message);
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (self.code.status(), Json(body)).into_response();
        if self.code == ErrorCode::IndexLoading {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        use tessera_index::IndexError;
        let code = match &e {
            crate::Error::Index(IndexError::MissingComponent { .. })
            | crate::Error::Index(IndexError::QueryLacks { .. }) => ErrorCode::UnsupportedMode,
            crate::Error::Index(IndexError::Dimension { .. }) => ErrorCode::WrongDimension,
            crate::Error::Index(IndexError::InvalidArgument(_)) => ErrorCode::InvalidRequest,
            crate::Error::Index(IndexError::DeadlineExceeded) => ErrorCode::DeadlineExceeded,
            crate::Error::Index(IndexError::DocumentExists { .. }) => ErrorCode::DocumentExists,
            crate::Error::Filter(_) => ErrorCode::InvalidFilter,
            crate::Error::NoModel { .. } => ErrorCode::InvalidRequest,
            _ => ErrorCode::Internal,
        };
        ApiError::new(code, e.to_string())
    }
}

/// `axum::Json` whose rejections become [`ApiError`]s (so a bad body gets the same JSON
/// error shape as everything else).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<Object<T>>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<Object<T>>::from_request(req, state).await {
            Ok(Json(Object(v))) => Ok(ApiJson(v)),
            Err(rejection) => Err(match &rejection {
                JsonRejection::JsonSyntaxError(_) => {
                    ApiError::new(ErrorCode::InvalidJson, rejection.body_text())
                }
                JsonRejection::JsonDataError(_) => {
                    ApiError::new(ErrorCode::InvalidRequest, rejection.body_text())
                }
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "expected a body with Content-Type: application/json",
                ),
                _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    ErrorCode::BodyTooLarge,
                    "request body is larger than the server accepts (--max-body-bytes)",
                ),
                _ => ApiError::new(ErrorCode::InvalidRequest, rejection.body_text()),
            }),
        }
    }
}

/// A `T` read only from a JSON object. serde's derived structs also accept a JSON array
/// and read it positionally (`[null, 5]` as `{"query": null, "k": 5}`), which is never
/// what a client meant; every request struct is read through this instead.
pub struct Object<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
            .map(Object)
    }
}

/// `deserialize_with` for an optional object field (`null` or absent is `None`).
pub fn object_or_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Ok(Option::<Object<T>>::deserialize(d)?.map(|o| o.0))
}

/// `deserialize_with` for a list of objects.
pub fn objects<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Ok(Vec::<Object<T>>::deserialize(d)?
        .into_iter()
        .map(|o| o.0)
        .collect())
}
