//! Authentication methods. Each strategy implements only the flows it joins.

pub mod code;
pub mod link;
pub mod password;
