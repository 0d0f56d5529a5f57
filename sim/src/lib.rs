//! osmesh-sim: the deterministic simulator.
//!
//! What will live here: the simulated network (an implementation of `osmesh-net`'s transport
//! seam), virtual time, seeded fault plans, scenario files, invariant checks and the trace.
//!
//! What it must not do: fork the actors. It hosts the same `osmesh-actors` code that runs in
//! production; everything it controls enters through the transport, the clock and the RNG.
