//! Self-service flows (login, registration, logout, settings, verification, recovery) and the
//! strategies that complete them, in Kratos's layout: `flow/<kind>` owns the flow's
//! lifecycle, `strategy/<method>` the method-specific part of a submission, `hook` the
//! configurable calls out (`web_hook`).

pub mod flow;
pub mod hook;
pub mod strategy;
