//! Admin changes to the hours (holidays added or removed, closures). (Stub: filled in by its owner.)
