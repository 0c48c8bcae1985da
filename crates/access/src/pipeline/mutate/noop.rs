//! `noop`: passes the request headers through unchanged (Oathkeeper copies them into the
//! session, which is why `/decisions` echoes them).

use http::header::HOST;

use crate::pipeline::{AuthenticationSession, RequestContext};

/// The `noop` mutator.
pub struct Noop;

impl Noop {
    /// Copies the request headers into the session, keeping headers set by earlier mutators.
    pub fn mutate(&self, request: &RequestContext, session: &mut AuthenticationSession) {
        let earlier = std::mem::take(&mut session.header);
        for (name, value) in &request.headers {
            if name != HOST {
                session.header.append(name.clone(), value.clone());
            }
        }
        let mut last = None;
        for (name, value) in earlier {
            if let Some(name) = name {
                session.header.remove(&name);
                last = Some(name);
            }
            if let Some(name) = &last {
                session.header.append(name.clone(), value);
            }
        }
    }
}
