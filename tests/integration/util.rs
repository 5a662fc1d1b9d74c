//! Shared test helpers (under construction)
