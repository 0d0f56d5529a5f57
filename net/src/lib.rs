//! osmesh-net: the RPC layer between a region and its clusters.
//!
//! What will live here: length-prefixed CBOR frames, the envelope and message catalogue, the
//! version + mutual-HMAC handshake, the multiplexed RPC peer (deadlines, heartbeats), the
//! reconnect backoff policy, and the `Transport` seam with its TCP implementation.
//!
//! What it must not know: actors, databases, or that a simulator exists. Time is tokio time;
//! randomness comes from an RNG handed in.
