//! Config fixtures and validation rules (under construction)
