//! measure (under construction)
