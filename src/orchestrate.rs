//! orchestrate (under construction)
