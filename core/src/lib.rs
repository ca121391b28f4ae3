//! forge-core
pub use mlx_rs;

#[cfg(not(target_vendor = "apple"))]
mod platform {
    /// mlx-rs seeds its default random key with this macOS kernel call; off
    /// Apple we supply it from the monotonic clock.
    #[no_mangle]
    pub extern "C" fn mach_approximate_time() -> u64 {
        use std::time::Instant;
        use std::sync::OnceLock;
        static START: OnceLock<Instant> = OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        start.elapsed().as_nanos() as u64 + 1
    }
}
