//! props: written with issue 5.
