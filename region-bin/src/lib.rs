//! osmesh-region: the region controller behind `regiond`.
//!
//! What will live here: configuration (flags, env, TOML), start-up (store, migrations, RPC
//! listener, region actors) and the actix-web HTTP API, whose handlers stay thin: parse, call
//! the region service functions in `osmesh-actors`, render.
//!
//! What it must not know: domain rules (those live in `core`) or the simulator.
