//! The machine's argon2 limit at the configured parameters, for `scripts/bench-login`:
//! the time of one password verify on one thread, and the verifies per second of all cores
//! running at once. Reads the same configuration as the server (defaults < env).

use std::time::Instant;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

fn main() -> anyhow::Result<()> {
    let config = gotthard::config::Config::load(None)?;
    let p = &config.password;
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::generate(&mut OsRng);
    let phc = argon
        .hash_password(b"bench-password-1", &salt)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string();
    let verify = |rounds: usize| -> anyhow::Result<()> {
        let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("{e}"))?;
        for _ in 0..rounds {
            argon
                .verify_password(b"bench-password-1", &parsed)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(())
    };
    verify(3)?; // warm up
    let rounds = 40;
    let started = Instant::now();
    verify(rounds)?;
    let one = started.elapsed().as_secs_f64() / rounds as f64;

    let cores = std::thread::available_parallelism()?.get();
    let started = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores).map(|_| s.spawn(|| verify(rounds))).collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("thread panicked"))?)
    })?;
    let all = (cores * rounds) as f64 / started.elapsed().as_secs_f64();
    println!(
        "params=m{},t{},p{} cores={cores} one_verify_ms={:.2} limit_per_s={:.1} all_cores_measured_per_s={:.1}",
        p.memory_kib,
        p.iterations,
        p.parallelism,
        one * 1000.0,
        cores as f64 / one,
        all
    );
    Ok(())
}
