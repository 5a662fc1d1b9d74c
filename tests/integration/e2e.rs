//! End-to-end runs (under construction)
