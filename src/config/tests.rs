//! Unit tests for config loading and validation.
