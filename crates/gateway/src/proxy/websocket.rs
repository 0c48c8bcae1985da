//! WebSocket (and any other HTTP/1.1 `Upgrade`) pass-through: the upgrade headers are
//! forwarded, and when the upstream answers `101 Switching Protocols` both upgraded
//! connections are spliced together until either side closes.

use http::header;
use http::{HeaderMap, HeaderValue, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::fields::Fields;

/// The `Upgrade` header of a request that asks to switch protocols (HTTP/1.1 with
/// `Connection: upgrade`), if it does.
pub(super) fn requested<B>(req: &hyper::Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let asks = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| req.headers().get(header::UPGRADE).cloned())
        .flatten()
}

/// Puts the upgrade request headers back after hop-by-hop stripping.
pub(super) fn restore_headers(h: &mut impl Fields, upgrade: HeaderValue) {
    h.set(&header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.set(&header::UPGRADE, upgrade);
}

/// Strips a `101` response's hop-by-hop headers except the two the switch needs.
pub(super) fn strip_for_switch(h: &mut HeaderMap) {
    let upgrade = h.get(header::UPGRADE).cloned();
    super::fields::strip_hop_by_hop(h);
    if let Some(upgrade) = upgrade {
        restore_headers(h, upgrade);
    }
}

/// Once both sides have switched, copies bytes both ways until either side closes.
pub(super) fn splice(client: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        match tokio::try_join!(client, upstream) {
            Ok((client, upstream)) => {
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    tracing::debug!(error = %e, "upgraded connection ended with an error");
                }
            }
            Err(e) => tracing::debug!(error = %e, "protocol switch failed"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_requests_are_recognized() {
        let req = hyper::Request::builder()
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "websocket")
            .body(())
            .expect("request");
        assert_eq!(requested(&req), Some(HeaderValue::from_static("websocket")));
        let plain = hyper::Request::builder()
            .header("upgrade", "websocket")
            .body(())
            .expect("request");
        assert_eq!(requested(&plain), None);
    }

    #[test]
    fn switch_keeps_upgrade_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Upgrade"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        strip_for_switch(&mut h);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert!(!h.contains_key("keep-alive"));
    }
}
