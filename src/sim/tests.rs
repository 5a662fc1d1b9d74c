//! HTTP tests of the simulator against spawn_local.
