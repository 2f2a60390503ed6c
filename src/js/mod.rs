//! JavaScript semantics the reference relies on.

pub(crate) mod date;
