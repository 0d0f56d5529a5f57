//! Test-only switches that inject known bugs, so the simulator can prove its invariants
//! catch them. Compiled only with the `test-hooks` feature; without it every switch is a
//! constant `false` and the code paths that consult it are the normal ones.
//!
//! The switches are thread-local: a simulated world runs on one thread, so flipping a switch
//! in one test never leaks into another running in parallel.
//!
//! Each switch is read by the code it breaks (`core` or `osmesh-actors`) through its
//! function here, e.g. `osmesh_core::hooks::serve_cached_as_live()`; `sim/tests/scenarios.rs`
//! turns each on and shows the swarm catches it (docs/TESTING.md lists them).

macro_rules! switches {
    ($($(#[$doc:meta])* $name:ident / $set:ident;)*) => {
        #[cfg(feature = "test-hooks")]
        mod cells {
            thread_local! {
                $(
                    #[allow(non_upper_case_globals)]
                    pub(super) static $name: std::cell::Cell<bool> =
                        const { std::cell::Cell::new(false) };
                )*
            }
        }

        $(
            $(#[$doc])*
            #[cfg(feature = "test-hooks")]
            pub fn $set(on: bool) {
                cells::$name.with(|cell| cell.set(on));
            }

            $(#[$doc])*
            #[cfg(feature = "test-hooks")]
            pub fn $name() -> bool {
                cells::$name.with(|cell| cell.get())
            }

            $(#[$doc])*
            #[cfg(not(feature = "test-hooks"))]
            #[inline(always)]
            pub fn $name() -> bool {
                false
            }
        )*

        /// Turns every switch off.
        #[cfg(feature = "test-hooks")]
        pub fn reset() {
            $($set(false);)*
        }
    };
}

switches! {
    /// Injected bug: the mesh merge forgets clusters that did not answer (MAAS's old fan-out).
    forget_not_answering / set_forget_not_answering;
    /// Injected bug: a live fan-out counts a cluster that did not answer as answering, with
    /// its cached snapshot served as if it had just said so.
    serve_cached_as_live / set_serve_cached_as_live;
    /// Injected bug: the live fan-out reuses the cached merge when *any* cluster answered,
    /// not only when all did (`.all` → `.any`).
    reuse_merge_if_any_answered / set_reuse_merge_if_any_answered;
    /// Injected bug: the region forgets a cluster when its link closes.
    forget_disconnected_cluster / set_forget_disconnected_cluster;
    /// Injected bug: allocation picks a ready node of any arch on a cluster with the image.
    allocate_any_arch / set_allocate_any_arch;
    /// Injected fault: the region actor stops when asked for its cluster list (the harness
    /// must fail the run, not skip its checks).
    region_actor_dies / set_region_actor_dies;
    /// Injected bug: the region admits any credential at `Register` (forged, superseded or
    /// revoked), as if identity came from the claim.
    admit_any_credential / set_admit_any_credential;
}
