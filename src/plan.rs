//! plan (under construction)
