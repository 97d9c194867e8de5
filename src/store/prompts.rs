//! Prompt versions uploaded from the console. (Stub: filled in by its owner.)
