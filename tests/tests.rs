//! The one integration-test binary: it links once and shares `support`.

mod support;

mod cli;
mod config_files;
mod http_api;
mod tidy;
