//! `/logout`: asks the identity server for a logout URL and sends the browser there.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};

use super::{Params, Ui, cookie_header, relay_cookies};
use crate::kratos::KratosError;
use crate::render::{self, ErrorPage};

/// `GET /self-service/logout/browser` with the browser's cookies, then 303 to `logout_url`;
/// without a session (401) the person is sent to sign in.
pub(super) async fn start(
    State(ui): State<Ui>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(query);
    let cookie = cookie_header(&headers);
    match ui
        .kratos
        .create_browser_logout_flow(cookie.as_deref(), params.get("return_to"))
        .await
    {
        Ok(reply) => relay_cookies(render::see_other(&reply.body.logout_url), reply.set_cookies),
        Err(KratosError::Api { status, .. }) if status == StatusCode::UNAUTHORIZED => {
            render::see_other("/login")
        }
        Err(error) => ErrorPage::from_kratos(&error, Some("/logout".to_string())).into_response(),
    }
}
