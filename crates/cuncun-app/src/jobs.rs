//! One supervisor for background work (see the module docs once filled in).
