//! The clock every time check reads: the system clock by default, a fixed
//! one in tests ([`SenderBoundBuilder::clock`](crate::SenderBoundBuilder::clock)).

pub use senderbound_core::clock::{Clock, FixedClock, SystemClock};
