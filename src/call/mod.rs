//! The flow of one call, as the caller lives it. Until the IVR issue lands, an answered call is
//! held up and ended cleanly by either side.
