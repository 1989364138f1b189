//! book: end-to-end tests (placeholder until written).
