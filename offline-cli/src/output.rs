//! Writing results and notes without panicking: a closed pipe or a full disk is an error the
//! command reports (stdout), or a note lost (stderr), never a panic after the work is done.

use std::fmt::Display;
use std::io::Write;

use crate::error::CliError;

/// Writes a line of the command's result to stdout, and flushes it.
pub(crate) fn say(line: impl Display) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Writes a note to stderr; a note that cannot be written is dropped.
pub(crate) fn note(line: impl Display) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
