//! Local stand-ins used by `tokengate demo`, `tokengate emulator` and the integration tests:
//! the Authlete introspection emulator and an echo upstream. They live in the library (not
//! under `tests/`) so that a newcomer's demo and CI exercise the same fakes.

pub mod echo;
pub mod emulator;
pub mod run;
