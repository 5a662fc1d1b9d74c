//! Arrival processes (under construction).
