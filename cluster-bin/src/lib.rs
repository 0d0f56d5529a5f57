//! osmesh-cluster: the cluster controller behind `clusterd`.
//!
//! What will live here: configuration (name, region addresses, secret file, boot-image
//! directory, declared-OS TOML) and start-up of the cluster actor with its TCP dialer.
//!
//! What it must not know: region internals (it only speaks the protocol) or the simulator.
