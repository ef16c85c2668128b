//! Who a command runs for.
