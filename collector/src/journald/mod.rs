//! The journald source's pure parts: the decoder of `journalctl --output=json` lines and
//! the kernel audit record parser. The reader that follows the journal with cursor
//! checkpoints is not built yet.

pub mod audit;
pub mod decode;
