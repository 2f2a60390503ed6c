//! Segment subscription triggers (placeholder: being written).
