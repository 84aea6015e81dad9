//! Why a request was refused: one [`Error`] variant per refusal, each with
//! one status, one `error=` code ([`ErrorCode`]), one fixed description and
//! one audit [`Severity`]. The table is in the README.

pub use senderbound_core::{Error, ErrorCode, Severity};
