//! The `prism` command's subcommands, one module each.

pub mod bench;
pub mod info;
pub mod layout;
pub mod render;
pub mod scaling;
pub mod stats;

/// An error to print as `prism: error: …` before exiting non-zero.
///
/// Deliberately not `std::error::Error`, so that any library error converts into it with `?`.
#[derive(Debug)]
pub enum CliError {
    Msg(String),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Msg(m) => f.write_str(m),
        }
    }
}

impl<E: std::error::Error> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError::Msg(e.to_string())
    }
}

pub fn msg(text: impl Into<String>) -> CliError {
    CliError::Msg(text.into())
}
