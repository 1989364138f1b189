//! Lesson 04: end-to-end tests (written with the lesson).
