//! The one integration-test binary (STYLE.md §8): every module shares `support`.

mod providers;
mod support;
