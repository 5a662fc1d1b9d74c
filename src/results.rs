//! results (under construction)
