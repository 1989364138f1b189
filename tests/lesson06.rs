//! lesson06: end-to-end tests (placeholder until written).
