//! A raw pointer that rayon tasks may share, for writes to provably disjoint regions.

pub(crate) struct SyncPtr<T = f32>(pub(crate) *mut T);

// Not derived: a derive would require `T: Clone`.
impl<T> Clone for SyncPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SyncPtr<T> {}

// SAFETY: users write only disjoint regions through it (stated at each use).
unsafe impl<T> Send for SyncPtr<T> {}
unsafe impl<T> Sync for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    /// Method access, so closures capture the wrapper rather than the raw field.
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}
