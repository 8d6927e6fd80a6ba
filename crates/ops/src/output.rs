//! What the operator CLI prints goes through here: output to a reader that went away
//! (`orderflow status | head -1`) ends the command quietly and successfully, where `println!`
//! would panic on the closed pipe.

use std::io::Write;

/// Writes to stdout; a closed stdout ends the process with success (the reader had enough),
/// any other write error with one line and exit status 1.
pub fn write_stdout(text: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("error: writing the output: {error}");
            std::process::exit(1)
        }
    }
}

/// `println!` for the CLI's output: see [`write_stdout`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the CLI's output: see [`write_stdout`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}
