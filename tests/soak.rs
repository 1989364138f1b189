//! soak: written with issue 5.
