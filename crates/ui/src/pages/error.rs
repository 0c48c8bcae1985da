//! `/error?id=`: shows an error the identity server stored for a browser flow.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};

use super::{Params, Ui, cookie_header};
use crate::kratos::KratosError;
use crate::render::ErrorPage;

/// Fetches `GET /self-service/errors?id=` and shows it; the page itself answers 200 because
/// showing a stored error is this page working as intended.
pub(super) async fn show(
    State(ui): State<Ui>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(query);
    let Some(id) = params.get("id") else {
        return ErrorPage::new(
            StatusCode::BAD_REQUEST,
            "No error to show",
            "This page shows errors from sign-in and sign-up, but no error id was given.",
        )
        .into_response();
    };
    let cookie = cookie_header(&headers);
    match ui.kratos.get_flow_error(id, cookie.as_deref()).await {
        Ok(reply) => {
            let stored = reply.body.error;
            let mut page = ErrorPage::new(
                StatusCode::OK,
                stored.status.as_deref().unwrap_or("Something went wrong"),
                &stored.summary(),
            );
            page.code = stored.code;
            page.error_id = stored.id.clone();
            if stored.reason.as_deref() != Some(page.message.as_str()) {
                page.detail = stored.reason;
            }
            page.into_response()
        }
        Err(KratosError::Api { status, .. }) if status == StatusCode::NOT_FOUND => ErrorPage::new(
            StatusCode::NOT_FOUND,
            "Error not found",
            "This error report does not exist or is no longer available.",
        )
        .into_response(),
        Err(error) => ErrorPage::from_kratos(&error, None).into_response(),
    }
}
