//! Primitives every component shares and none may get wrong: redacting secrets, comparing
//! secrets in constant time, generating random tokens and identifiers, and formatting times
//! the way the anchored APIs do. Nothing here performs I/O, so it is trivially testable and
//! safe to use on the request hot path.

pub mod secret;
pub mod timefmt;
pub mod token;

pub use secret::{Secret, constant_time_eq};
pub use token::{new_id, random_alphanumeric, random_bytes, random_urlsafe};
