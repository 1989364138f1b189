//! lesson05: end-to-end tests (placeholder until written).
