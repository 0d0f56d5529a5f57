//! Test-only switches that inject known bugs, so the simulator can prove its invariants
//! catch them. Compiled only with the `test-hooks` feature; without it every switch is a
//! constant `false` and the code paths that consult it are the normal ones.
//!
//! The switches are thread-local: a simulated world runs on one thread, so flipping a switch
//! in one test never leaks into another running in parallel.

#[cfg(feature = "test-hooks")]
thread_local! {
    static FORGET_NOT_ANSWERING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Injected bug: the mesh merge forgets clusters that did not answer (MAAS's old fan-out).
#[cfg(feature = "test-hooks")]
pub fn set_forget_not_answering(on: bool) {
    FORGET_NOT_ANSWERING.with(|cell| cell.set(on));
}

/// Whether the merge should (wrongly) drop non-answering clusters.
#[cfg(feature = "test-hooks")]
pub fn forget_not_answering() -> bool {
    FORGET_NOT_ANSWERING.with(|cell| cell.get())
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn forget_not_answering() -> bool {
    false
}
