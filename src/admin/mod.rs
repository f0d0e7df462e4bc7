//! The admin listener (being written).
